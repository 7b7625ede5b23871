"""Which RoPE a generation engine loads an export with.

An export carries YaRN (`rope_scaling`) so that it serves long contexts, but torchtitan trains
without it, and static YaRN changes the logits at every length (Qwen3's model cards advise adding
`rope_scaling` only when long contexts are needed). So engines load a view of the export without it
whenever the requests fit in the native window: RL rollouts always (they must be the policy's own
samples), synth and eval jobs when their longest request does.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path


def native_rope(hf_dir: Path) -> Path:
    """A view of the folder (links) whose config.json has no rope_scaling; the folder itself if it has none."""
    cfg = json.loads((hf_dir / "config.json").read_text())
    if not cfg.get("rope_scaling"):
        return hf_dir
    view = Path(tempfile.mkdtemp(prefix="native-rope-model."))
    atexit.register(shutil.rmtree, view, True)
    for f in hf_dir.iterdir():
        if f.name != "config.json":
            (view / f.name).symlink_to(f.resolve())
    cfg.pop("rope_scaling")
    (view / "config.json").write_text(json.dumps(cfg, indent=2))
    return view


def model_for(model: Path | str, longest_tokens: int) -> Path | str:
    """`model` itself, or its native-RoPE view when it is a local export with YaRN and requests of up
    to `longest_tokens` (prompt + generation) fit in the window YaRN extends."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return model  # a hub id or a server: loaded as it is
    scaling = json.loads(config.read_text()).get("rope_scaling") or {}
    native = scaling.get("original_max_position_embeddings")
    if native and longest_tokens <= native:
        return native_rope(Path(model))
    return model
