"""The recipe language: YAML with positions, inheritance, overrides, and the pydantic schema."""
