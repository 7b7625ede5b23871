"""Qwen3's tokenizer recipe: byte-level BPE (the Qwen2 pre-tokenizer), Qwen3's 26 added tokens after the
learned vocabulary, and Qwen3's chat template, saved so `transformers.AutoTokenizer` loads it.

Chat template (chat_template.jinja, beside this file): the `chat_template` of the Qwen3 release
tokenizer_config.json (Qwen/Qwen3-*, April 2025), verbatim, as the loaded string (no trailing newline).
Taken from llama.cpp's `models/templates/Qwen-Qwen3-0.6B.jinja` (copy read at ye-NX/llama.cpp
b354d7c9ecb76c97c07098617cdebbdfffa2583e) and checked character for character against a second copy,
the `qwen3_chat_template` string in wangling03/BioReason bioreason/models/dl/chat_template_dl.py
(9153dfbd2f996b2be0ef7a86a7e0294b1095fb52), which tests/test_tokenizer.py embeds and compares.
Later Qwen3 repository revisions (mid 2025, and the 2507 models) changed the template (e.g.
`message.content is string` guards, `reasoning_content is string`); this is the release version.

Special-token flags are those of the official config: the 14 tokens <|endoftext|> .. <|video_pad|>
(151643-151656) are `special: true`; <tool_call>, </tool_call>, the FIM/repo tokens, <tool_response>,
</tool_response>, <think> and </think> (151657-151668) are added tokens with `special: false`, so that
decoding with skip_special_tokens keeps them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers


class SpecialToken(NamedTuple):
    content: str
    special: bool  # the `special` flag of Qwen3's tokenizer_config.json


# Qwen3's added tokens in id order: ids 151643..151668 in the released vocabulary.
SPECIAL_TOKENS: list[SpecialToken] = [SpecialToken(c, s) for c, s in [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]]
QWEN3_FIRST_ADDED_ID = 151_643  # where SPECIAL_TOKENS start in the released Qwen3 vocabulary
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"

# Qwen2/Qwen3 pre-tokenizer split (tokenizer.json of Qwen/Qwen3-*): digits one at a time.
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                     r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# Copied along from a local pretrained directory when present.
OPTIONAL_FILES = ("special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "vocab.json",
                  "merges.txt")


def chat_template() -> str:
    """Qwen3's official chat template (see the module docstring for its provenance)."""
    return resources.files(__package__).joinpath("chat_template.jinja").read_text(encoding="utf-8")


def _byte_level_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return tok


def add_qwen3_tokens(tok: Tokenizer) -> None:
    """Append SPECIAL_TOKENS, in order, after the current vocabulary."""
    for content, special in SPECIAL_TOKENS:
        token = AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False,
                           special=special)
        if special:
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE trained on texts, Qwen3's added tokens appended after the learned ones.

    vocab_size counts everything (256 byte symbols, merges, the 26 added tokens); a corpus too small to
    fill it gives fewer merges. Deterministic for the same texts in the same order.
    """
    minimum = 256 + len(SPECIAL_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size {vocab_size} is too small: a byte-level BPE with Qwen3's "
                         f"{len(SPECIAL_TOKENS)} added tokens needs at least {minimum}")
    tok = _byte_level_bpe()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS), min_frequency=2,
                                  show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    add_qwen3_tokens(tok)
    return tok


def tokenizer_config(tok: Tokenizer, model_max_length: int) -> dict:
    """tokenizer_config.json in the layout of Qwen3's (keys sorted as in the release)."""
    decoder = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                 "single_word": t.single_word, "special": t.special}
        for i, t in sorted(tok.get_added_tokens_decoder().items())
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [c for c, special in SPECIAL_TOKENS if special and c != PAD_TOKEN],
        "bos_token": None,
        "chat_template": chat_template(),
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS_TOKEN,
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": PAD_TOKEN,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def save_tokenizer(tok: Tokenizer, out_dir: Path, model_max_length: int) -> None:
    """Write tokenizer.json and tokenizer_config.json so AutoTokenizer.from_pretrained(out_dir) loads
    a Qwen2Tokenizer with Qwen3's special tokens and chat template."""
    missing = [c for c, _ in SPECIAL_TOKENS if tok.token_to_id(c) is None]
    if missing:
        raise ValueError(f"tokenizer lacks Qwen3's added tokens {missing}; build it with train_bpe")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"), pretty=True)
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(tok, model_max_length), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8")


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~", ".\\")) or path in (".", "..") or path.count("/") > 1


def load_pretrained(path: str, out_dir: Path) -> None:
    """Copy an existing tokenizer into out_dir: a local directory (tokenizer.json and
    tokenizer_config.json required), or else a hub id (needs hub access)."""
    out_dir = Path(out_dir)
    local = Path(path).expanduser()
    if local.exists() or _looks_local(path):
        if not local.is_dir():
            raise FileNotFoundError(f"pretrained tokenizer {path}: no such directory")
        missing = [name for name in TOKENIZER_FILES if not (local / name).is_file()]
        if missing:
            raise FileNotFoundError(f"pretrained tokenizer {path}: missing {', '.join(missing)} "
                                    f"(a tokenizer directory needs {' and '.join(TOKENIZER_FILES)})")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES + OPTIONAL_FILES:
            if (local / name).is_file():
                shutil.copy2(local / name, out_dir / name)
        return
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(path).save_pretrained(str(out_dir))
