"""qwen3-recipe: the Qwen3 training recipe as declarative, validated YAML."""

__version__ = "0.1.0"
