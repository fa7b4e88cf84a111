"""The owner backend's words in each language: catalogs (`edge/web/catalogs/<lang>.json`, one key per text),
never literals in templates. English and Filipino; a key missing from a catalog falls back to English, and a
test checks that none is missing. The language is the `lang` cookie, else the browser's Accept-Language."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "fil": "Filipino"}
DEFAULT = "en"
_DIR = Path(__file__).parent / "catalogs"


@cache
def catalog(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def pick(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the visitor's choice, else the first of the browser's that we have."""
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()
        for lang in LANGUAGES:
            if code == lang or code.split("-")[0] == lang or (lang == "fil" and code.split("-")[0] == "tl"):
                return lang
    return DEFAULT


def translator(lang: str):
    """`t(key, **values)` for templates: the text in `lang` (English if the key is missing), filled in."""
    mine, english = catalog(lang), catalog(DEFAULT)

    def t(key: str, **values: object) -> str:
        text = mine.get(key) or english.get(key) or key
        return text.format(**values) if values else text

    return t
