"""Playwright on Debian's Chromium (it cannot download a browser here), for the page tests: a headless browser
and where its screenshots go (test-artifacts/, kept after the run for people to look at)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


def shot(name: str) -> str:
    """Where the screenshot `name` goes."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


async def submit(page, button: str, fields: dict[str, str]) -> None:
    """Fill `fields` (selector → text) and click `button`, waiting for the page the form leads to."""
    for selector, text in fields.items():
        await page.fill(selector, text)
    async with page.expect_navigation():
        await page.click(button)
