"""Money and card ids: decimal strings in major units ⇄ integer minor units, and the one UID form.

Amounts are integers in the currency's minor unit everywhere inside (`*_minor`); config files and people use
decimal strings in major units ("12.50"). Card UIDs are upper-case hex of the UID bytes only, whatever the
reader or the person typed (any case, spaces, colons, dashes).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

_HEX = re.compile(r"^[0-9A-F]+$")


class MoneyError(ValueError):
    """An amount that is not a valid decimal of this currency."""


_PLAIN = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$", re.ASCII)  # "12", "12.50", ".5": no exponent


def _plain_decimal(text: str | int | float, what: str) -> Decimal:
    """A decimal written plainly in ASCII digits ("12.50"); "1e3", "2E1", "١٢" and "NaN" are not amounts."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise MoneyError(f"not {what}: {text!r}")
    if isinstance(text, float):
        text = repr(text)
    raw = str(text).strip()
    if not _PLAIN.match(raw):
        raise MoneyError(f"not {what} (write it as digits with a decimal point, like 12.50): {text!r}")
    return Decimal(raw)


def to_minor(text: str | int | float, exponent: int = 2, *, allow_negative: bool = False) -> int:
    """'12.50' → 1250 (exponent 2). More decimals than the currency has, an exponent, or a non-number is an
    error."""
    value = _plain_decimal(text, "an amount")
    scaled = value.scaleb(exponent)
    written = str(text).strip() if isinstance(text, str) else ""
    if scaled != scaled.to_integral_value() or len(written.partition(".")[2]) > exponent:
        raise MoneyError(f"{text!r} has more than {exponent} decimal places")
    if scaled < 0 and not allow_negative:
        raise MoneyError(f"negative amount: {text!r}")
    return int(scaled)


def rate_to_minor(text: str, exponent: int = 2) -> Decimal:
    """A price per unit ('0.255' per kWh) in minor units, kept exact (rates may have more decimals)."""
    value = _plain_decimal(text, "a price")
    if value < 0:
        raise MoneyError(f"not a price: {text!r}")
    return value.scaleb(exponent)


def round_minor(value: Decimal) -> int:
    """Round a fractional minor amount half-up, once, at the end of a calculation."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_minor(amount: int, exponent: int = 2, currency: str = "") -> str:
    """1250 → '12.50' (with `currency`: '12.50 PHP'): the amount as a person reads it, exact."""
    text = f"{Decimal(amount).scaleb(-exponent):.{exponent}f}"
    return text + (f" {currency}" if currency else "")


class UidError(ValueError):
    """A card id that is not 4, 7 or 10 bytes of hex."""


def normalise_uid(text: str) -> str:
    """'04:a2 3b-c4' → '04A23BC4'. Raises `UidError` unless it is 4, 7 or 10 bytes of hex."""
    if not isinstance(text, str):
        raise UidError(f"not a card id: {text!r}")
    uid = re.sub(r"[\s:\-]", "", text).upper()
    if not _HEX.match(uid) or len(uid) not in (8, 14, 20):
        raise UidError(f"not a card id (4, 7 or 10 bytes of hex): {text!r}")
    return uid


def lookup_key(text: str) -> str:
    """The key to find a card by an OCPP idTag/idToken: the normalised UID when it is one, else the text."""
    try:
        return normalise_uid(text)
    except UidError:
        return text


# a pay session's id tag: "PAY" + its code (edge.billing.pay); the controller knows it for billing to decide
PAY_PREFIX = "PAY"
PAY_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O, U to misread
PAY_CODE_LENGTH = 10


def is_pay_tag(text: str | None) -> bool:
    """Whether an idTag / idToken is a pay session's (1.6's 20 characters hold it)."""
    return isinstance(text, str) and len(text) == len(PAY_PREFIX) + PAY_CODE_LENGTH \
        and text.startswith(PAY_PREFIX) and all(c in PAY_CODE_ALPHABET for c in text[len(PAY_PREFIX):])


SYMBOLS = {"PHP": "₱", "USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£"}


def format_money(amount: int, exponent: int = 2, currency: str = "") -> str:
    """1250 PHP → '₱12.50' for a page: the currency's symbol where it has a common one, else '12.50 XYZ'."""
    symbol = SYMBOLS.get(currency)
    if symbol:
        text = format_minor(abs(amount), exponent)
        return f"{'-' if amount < 0 else ''}{symbol}{text}"
    return format_minor(amount, exponent, currency)


def format_price(major: str, currency: str = "") -> str:
    """A price written in major units ('0.255', a rate may have more decimals than the currency) for a page:
    '₱0.255', else '0.255 XYZ'."""
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{major}" if symbol else f"{major} {currency}".strip()
