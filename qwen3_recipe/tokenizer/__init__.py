"""Qwen3 tokenizer: byte-level BPE training, Qwen3 special tokens and chat template, the tokenizer job."""
