"""The words people read, in each language (the pages, and what a charger's display shows): catalogs, one key per text, never literals in templates. The
owner backend's (`edge/web/catalogs/<lang>.json`) in English and Filipino; what drivers read (the pay pages,
receipts; `edge/web/catalogs/driver/<lang>.json`) in English, Filipino and Chinese. A key missing from a
catalog falls back to English, and a test checks that none is missing. The language is the `lang` cookie,
else the browser's Accept-Language."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "fil": "Filipino"}
DRIVER_LANGUAGES = {"en": "English", "fil": "Filipino", "zh": "中文"}
DEFAULT = "en"
_DIR = Path(__file__).parent / "web" / "catalogs"


@cache
def catalog(lang: str, domain: str = "") -> dict[str, str]:
    """The owner's catalog (`domain` ""), or the drivers' ("driver")."""
    return json.loads((_DIR / domain / f"{lang}.json").read_text(encoding="utf-8"))


def pick(cookie: str | None, accept_language: str | None, languages: dict[str, str] = LANGUAGES) -> str:
    """The page's language: the visitor's choice, else the first of the browser's that we have."""
    if cookie in languages:
        return cookie  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()
        for lang in languages:
            if code == lang or code.split("-")[0] == lang or (lang == "fil" and code.split("-")[0] == "tl"):
                return lang
    return DEFAULT


def translator(lang: str, domain: str = ""):
    """`t(key, **values)` for templates: the text in `lang` (English if the key is missing), filled in."""
    mine, english = catalog(lang, domain), catalog(DEFAULT, domain)

    def t(key: str, **values: object) -> str:
        text = mine.get(key) or english.get(key) or key
        return text.format(**values) if values else text

    return t
