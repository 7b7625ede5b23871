"""Numbers with units in recipes.

Token counts are decimal (`500B` = 5e11, `18T` = 1.8e13), as in papers. Sequence lengths are
binary (`4K` = 4096, `32k` = 32768, `128K` = 131072), as in model configs. Suffixes are
case-insensitive; plain integers pass through.
"""

from __future__ import annotations

import re

_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12, "p": 10**15}
_BINARY = {"": 1, "k": 2**10, "m": 2**20}
_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]?)\s*$")


def _parse(value: object, table: dict[str, int], what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected a whole number of {what}, got {value}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {what} like {'/'.join(_examples(table))}, got {type(value).__name__}")
    match = _PATTERN.match(value.replace("_", ""))
    suffix = match.group(2).lower() if match else None
    if not match or suffix not in table:
        raise ValueError(f"'{value}' is not a valid {what}; write a number with an optional unit "
                         f"({', '.join(_examples(table))})")
    number = float(match.group(1)) * table[suffix]
    if not number.is_integer():
        raise ValueError(f"'{value}' is not a whole number of {what}")
    return int(number)


def _examples(table: dict[str, int]) -> list[str]:
    return ["4K", "32K"] if table is _BINARY else ["500B", "18T", "4M"]


def parse_tokens(value: object) -> int:
    """Token counts, decimal units: 4M, 500B, 18T."""
    return _parse(value, _DECIMAL, "token count")


def parse_seq_len(value: object) -> int:
    """Sequence lengths, binary units: 4K = 4096, 128K = 131072."""
    return _parse(value, _BINARY, "sequence length")


def format_count(n: float, binary: bool = False) -> str:
    """Short human form: 18T, 4.5B, 32K (binary for sequence lengths)."""
    if binary:
        for unit, size in (("M", 2**20), ("K", 2**10)):
            if n >= size and n % size == 0:
                return f"{int(n // size)}{unit}"
        return str(int(n))
    for unit, size in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.3g}{unit}"
    return f"{n:.3g}" if isinstance(n, float) else str(n)


def format_flops(n: float) -> str:
    """FLOPs in scientific notation: 6.48e+22."""
    return f"{n:.3g}"
