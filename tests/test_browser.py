"""The race board in a real headless Chromium, against a real Daphne running sped-up races."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.conftest import require_service
from tests.servers import REPO_DIR, start_daphne

pytestmark = pytest.mark.e2e

SCREENSHOTS = REPO_DIR / "test-output" / "browser"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update",
]  # fmt: skip
# Fixture races given to one test each (Alexandra Park).
RACE_ODDS, RACE_RESULT, RACE_FINISHED, RACE_RECONNECT, RACE_SORT, RACE_PHONE = 11, 12, 13, 14, 15, 16


@pytest.fixture(scope="module")
def chromium():
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    require_service(os.path.exists(executable), "Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - it is in requirements.txt
        require_service(False, "playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def board_server(server_database, tmp_path_factory):
    """A Daphne whose markets send odds every 0.5-1 s (a race lasts about 7 s)."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("board"), SIMULATION_SPEEDUP="10")
    yield server
    server.stop()


@pytest.fixture
def page(chromium, request):
    """A browser tab; a screenshot of it is saved in test-output/browser/ after the test."""
    viewport = getattr(request, "param", {"width": 1200, "height": 900})
    context = chromium.new_context(viewport=viewport)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', request.node.name)}.png", full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


PRICES_JS = "JSON.stringify([...document.querySelectorAll('#runners td.odds .price')].map(c => c.textContent))"


def prices(page) -> str:
    return page.evaluate(PRICES_JS)


def wait_until_live(page) -> None:
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)


def test_the_race_day_page_lists_the_fixture_meetings(page, board_server):
    # By date, so that the test does not depend on today's date; "today and upcoming" is
    # checked in tests/test_pages.py with a fixed today.
    page.goto(board_server.http_url("/?date=2026-12-04"))

    assert "Addington" in page.locator("section.meeting h2").inner_text()
    assert page.locator("table.races tbody tr").count() == 9
    page.locator("a[rel=next]").click()
    page.wait_for_url(re.compile(r"date=2026-12-05$"))
    assert "Alexandra Park" in page.locator("section.meeting h2").inner_text()
    assert page.locator("table.races tbody tr").count() == 10
    assert page.locator("a[rel=prev]").get_attribute("href") == "?date=2026-12-04"
    page.locator("table.races a", has_text="R1").first.click()
    page.wait_for_url(re.compile(r"/races/10/$"))
    assert page.locator("#runners tbody tr").count() >= 8


def test_a_race_page_lists_its_starters_and_its_odds_move_on_the_chart(page, board_server):
    page.goto(board_server.http_url(f"/races/{RACE_ODDS}/"))
    wait_until_live(page)
    starters = page.request.get(board_server.http_url(f"/api/races/{RACE_ODDS}/")).json()["starters"]

    rows = page.locator("#runners tbody tr")
    assert rows.count() == len(starters)
    assert rows.locator("th").all_inner_texts()[0].startswith(starters[0]["horse_name"])
    page.wait_for_function("[...document.querySelectorAll('#runners td.odds .price')].length > 0", timeout=10_000)
    first = prices(page)
    page.wait_for_function(f"(before) => {PRICES_JS} !== before", arg=first, timeout=10_000)
    assert prices(page) != first
    assert page.locator("#runners tbody tr.favourite .fav-badge").count() == 1
    assert page.locator("#runners td.odds.shortening, #runners td.odds.drifting").count() > 0
    assert page.locator("#market-chart svg g.runner-line path").count() == len(starters)
    assert page.locator("#runners td.trend svg path").count() == len(starters)


def test_the_result_shows_the_winner_and_is_announced(page, board_server):
    page.goto(board_server.http_url(f"/races/{RACE_RESULT}/"))
    wait_until_live(page)

    page.wait_for_selector("#result:not([hidden]) li.winner", timeout=20_000)

    winner = page.locator("#result li.winner").inner_text()
    assert winner.startswith("1 #")
    assert page.locator("#runners tbody tr.winner td.placing").inner_text() == "1st"
    assert page.locator("#announcer").inner_text().startswith("Result: 1st number")


def test_a_finished_race_shows_its_result_straight_away(page, board_server):
    page.goto(board_server.http_url(f"/races/{RACE_FINISHED}/"))
    page.wait_for_selector("#result:not([hidden]) li.winner", timeout=20_000)

    page.goto(board_server.http_url(f"/races/{RACE_FINISHED}/"))

    assert page.locator("#result li.winner").is_visible()  # rendered by the server, before any socket
    wait_until_live(page)
    # The market so far comes from the odds-history API, fetched after initial_state.
    page.wait_for_selector("#market-chart svg g.runner-line", timeout=10_000)


def test_runners_sort_by_odds_with_the_favourite_first(page, board_server):
    page.goto(board_server.http_url(f"/races/{RACE_SORT}/"))
    page.wait_for_function("document.querySelectorAll('#runners td.odds .price').length > 0", timeout=10_000)

    page.get_by_role("button", name="Odds").click()

    prices = [float(text) for text in page.locator("#runners tbody td.odds .price").all_inner_texts()]
    assert prices == sorted(prices)
    assert page.locator("#runners tbody tr").first.get_attribute("class").find("favourite") >= 0
    page.get_by_role("button", name="Number").click()
    numbers = [int(n) for n in page.locator("#runners tbody tr td:first-child").all_inner_texts()]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize("page", [{"width": 390, "height": 844}], indirect=True, ids=["phone"])
def test_the_race_page_reads_on_a_phone(page, board_server):
    page.goto(board_server.http_url(f"/races/{RACE_PHONE}/"))
    wait_until_live(page)

    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390  # wide tables scroll inside their own box, not the page
    assert page.locator("#runners tbody tr").first.is_visible()


def test_the_board_reconnects_after_a_server_restart_and_rebuilds(page, server_database, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("restart")
    server = start_daphne(server_database, log_dir=log_dir, SIMULATION_SPEEDUP="5")
    try:
        page.goto(server.http_url(f"/races/{RACE_RECONNECT}/"))
        wait_until_live(page)
        page.wait_for_function("document.querySelectorAll('#runners td.odds .price').length > 0", timeout=15_000)

        server.stop()
        page.wait_for_selector("#connection[data-state=reconnecting]", timeout=10_000)
        server = start_daphne(server_database, log_dir=log_dir, port=server.port, SIMULATION_SPEEDUP="5")

        wait_until_live(page)
        page.wait_for_selector("#market-chart svg g.runner-line circle", timeout=10_000)  # history refetched
        page.wait_for_function(
            "document.querySelector('#market-chart svg g.runner-line path').getAttribute('d').split('L').length > 2",
            timeout=15_000,
        )
        assert page.locator("#runners tbody tr").count() > 0
        assert page.locator("#connection .label").inner_text() == "Live"
    finally:
        server.stop()
