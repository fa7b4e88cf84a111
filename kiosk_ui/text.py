"""The kiosk's words in English, Filipino and Chinese (`kiosk_ui/catalogs/<lang>.json`, one key per text; a
test checks that every key is in all three): `translators()` gives each language's `t(key, **values)`."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

_DIR = Path(__file__).parent / "catalogs"


@cache
def catalog(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def translator(lang: str) -> Callable[..., str]:
    mine, english = catalog(lang), catalog("en")

    def t(key: str, **values: object) -> str:
        text = mine.get(key) or english.get(key) or key
        return text.format(**values) if values else text

    return t


def translators() -> dict[str, Callable[..., str]]:
    return {lang: translator(lang) for lang in ("en", "fil", "zh")}
