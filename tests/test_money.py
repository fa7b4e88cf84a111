"""Amounts as people write and read them: plain decimals in major units in, the same out."""

from __future__ import annotations

import pytest

from edge.money import MoneyError, format_minor, to_minor


@pytest.mark.parametrize("text, minor", [("12.50", 1250), ("12", 1200), (".5", 50), (" 7 ", 700), ("0.01", 1),
                                         (3, 300), (500.0, 50000)])
def test_plain_decimals_are_amounts(text, minor):
    assert to_minor(text) == minor


@pytest.mark.parametrize("text", ["1e3", "2E1", "1E+3", "١٢", "１２", "NaN", "Infinity", "", "12,50", "1.2.3",
                                  "0x10", "1_000", True, None])
def test_anything_else_is_refused_with_its_reason(text):
    """'1e3' once credited 1000.00: a top-up is written as digits with a decimal point, nothing else."""
    with pytest.raises(MoneyError, match="not an amount"):
        to_minor(text)


def test_more_fraction_digits_than_the_currency_has_is_refused():
    with pytest.raises(MoneyError, match="more than 2 decimal places"):
        to_minor("1.234")
    with pytest.raises(MoneyError, match="more than 2 decimal places"):
        to_minor("1.230")  # written with three: the owner meant something else
    with pytest.raises(MoneyError, match="more than 0 decimal places"):
        to_minor("5.5", 0)
    with pytest.raises(MoneyError, match="negative"):
        to_minor("-1")
    assert to_minor("-1", allow_negative=True) == -100


def test_formatting_is_exact_for_any_amount():
    assert format_minor(2000, 2, "PHP") == "20.00 PHP"
    assert format_minor(-1250) == "-12.50"
    assert format_minor(10**18 + 1) == "10000000000000000.01"  # a float would round this
    assert format_minor(5, 0, "JPY") == "5 JPY"
