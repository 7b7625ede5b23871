import pytest

from qwen3_recipe.units import format_count, parse_seq_len, parse_tokens


@pytest.mark.parametrize("text,value", [
    ("18T", 18 * 10**12), ("500B", 5 * 10**11), ("4M", 4_000_000), ("1.5T", 1_500_000_000_000),
    ("36t", 36 * 10**12), (1000, 1000), ("2_000", 2000), (3.0, 3), ("8K", 8000),
])
def test_token_counts_are_decimal(text, value):
    assert parse_tokens(text) == value


@pytest.mark.parametrize("text,value", [("4K", 4096), ("32k", 32768), ("128K", 131072), (512, 512), ("1M", 2**20)])
def test_sequence_lengths_are_binary(text, value):
    assert parse_seq_len(text) == value


@pytest.mark.parametrize("bad", ["lots", "4X", "", "1.5", True, [4], "4KK"])
def test_bad_units_raise_value_error_naming_the_value(bad):
    with pytest.raises(ValueError):
        parse_tokens(bad)


def test_format_count():
    assert format_count(18 * 10**12) == "18T"
    assert format_count(32768, binary=True) == "32K"
