"""
The race board in a real headless Chromium, for the browser tests: the browser, a tab that fails
its test on any error in the page and leaves a screenshot, and what the tests check in a page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator

from tests.conftest import require_service
from tests.servers import REPO_DIR

SCREENSHOTS = REPO_DIR / "test-output" / "browser"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
]  # fmt: skip
DESKTOP = {"width": 1200, "height": 900}
PHONES = {"360": {"width": 360, "height": 780}, "390": {"width": 390, "height": 844}}
# How long a page may take to show what the server just sent it: far more than it needs on a
# loaded 2-core machine, and only ever waited in full by a test that is failing.
SHOWN_WITHIN_MS = 10_000


@contextlib.contextmanager
def chromium_launched() -> Iterator[object]:
    """Debian's Chromium driven by Playwright; the test is skipped (failed under
    REQUIRE_SERVICES=1) without it."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    require_service(os.path.exists(executable), "Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - it is in requirements.txt
        require_service(False, "playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class PageProblems:
    """What went wrong in a tab: uncaught errors, console errors (a 404 is one) and requests
    that failed. A test that breaks something on purpose says what it expects to see."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.expected: list[re.Pattern[str]] = []

    def expect(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [problem for problem in self.seen if not any(e.search(problem) for e in self.expected)]


def screenshot_path(name: str):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"


@contextlib.contextmanager
def browser_tab(
    browser, *, viewport: dict, name: str, problems: PageProblems, **context_options: object
) -> Iterator[object]:
    """A tab of its own (in a context with Playwright's ``context_options``); a screenshot of it is
    saved in test-output/browser/{name}.png at the end, and an AssertionError raised for any
    JavaScript error, console error or failed request in it."""
    context = browser.new_context(viewport=viewport, **context_options)
    tab = context.new_page()
    seen = problems.seen
    tab.on("pageerror", lambda error: seen.append(f"uncaught: {error}"))
    tab.on(
        "console",
        lambda message: message.type == "error" and seen.append(f"console: {message.text} ({message.location['url']})"),
    )
    # A fetch cut short by leaving the page is aborted, not failed.
    tab.on(
        "requestfailed",
        lambda failed: failed.failure != "net::ERR_ABORTED" and seen.append(f"request: {failed.failure} {failed.url}"),
    )
    try:
        yield tab
    finally:
        with contextlib.suppress(Exception):  # a screenshot, most of all of a page that failed a test
            tab.screenshot(path=screenshot_path(name), full_page=True)
        unexpected = problems.unexpected()  # before closing, which aborts what is still open
        context.close()
    assert not unexpected, f"Problems in the page: {unexpected}"


def wait_until_live(page) -> None:
    page.wait_for_selector("#connection[data-state=live]", timeout=SHOWN_WITHIN_MS)


def post_feed(page, server, path: str, body: object, token: str, *, expect: int = 201) -> dict:
    """Push to the feed API, as a tote's feed would (through races.services, as the feed's Actor);
    return the answer."""
    response = page.request.post(
        server.http_url(path),
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    assert response.status == expect, response.text()
    return response.json()


def assert_inside_the_screen(page, selector: str) -> None:
    width = page.viewport_size["width"]
    # Measured at one moment, in the page: a live page may redraw a node between two calls.
    boxes = page.locator(selector).evaluate_all(
        """nodes => nodes.filter((node) => node.getClientRects().length)
            .map((node) => { const box = node.getBoundingClientRect(); return { x: box.x, width: box.width }; })"""
    )
    assert boxes, f"nothing matches {selector}"
    outside = [box for box in boxes if box["x"] < 0 or box["x"] + box["width"] > width]
    assert not outside, f"{selector}: {len(outside)} of {len(boxes)} reach beyond {width} px, e.g. {outside[0]}"


def assert_no_sideways_scrolling(page) -> None:
    scrolling = page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            tables: [...document.querySelectorAll('.table-scroll')].map((box) => box.scrollWidth - box.clientWidth),
        })"""
    )
    assert scrolling["page"] <= 0, f"the page scrolls sideways by {scrolling['page']} px"
    assert all(extra <= 0 for extra in scrolling["tables"]), f"a table scrolls sideways: {scrolling['tables']}"
