"""Debian's chromium driven by Playwright (``make browser`` installs it; Playwright never downloads a browser), with
every request off the loopback interface blocked and recorded."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = os.environ.get("HVBUYER_BROWSER", "/usr/bin/chromium")
# As root on a machine without internet: no sandbox, and none of chromium's own calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_loopback(url: str) -> bool:
    """A URL served by this machine (or one that needs no network: data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS or (parts.hostname or "").startswith("127.")


@dataclass
class OfflinePage:
    """A page whose requests to anything but loopback are aborted and listed in ``blocked``."""

    page: Page
    blocked: list[str] = field(default_factory=list)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Debian chromium."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"no browser at {CHROMIUM}: run `make browser` (or set HVBUYER_BROWSER)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def offline_page(browser: Browser, width: int = 1440, height: int = 900) -> Iterator[OfflinePage]:
    """A fresh context and page; off-loopback requests fail at once instead of waiting for a network."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    result = OfflinePage(page)

    def guard(route: Route) -> None:
        if is_loopback(route.request.url):
            route.continue_()
        else:
            result.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", guard)
    try:
        yield result
    finally:
        context.close()


def dismiss_dagster_welcome(page: Page) -> None:
    """A fresh Dagster instance greets its first visitor with a 'Join the Dagster community' dialog: skip it."""
    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_role("button", name="Skip").click(timeout=3000)
