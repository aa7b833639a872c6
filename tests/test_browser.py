"""The race board in a real headless Chromium, against a real Daphne running sped-up races."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser import (
    DESKTOP,
    PHONES,
    PageProblems,
    assert_inside_the_screen,
    assert_no_sideways_scrolling,
    browser_tab,
    chromium_launched,
    post_feed,
    wait_until_live,
)
from tests.servers import feed_token, start_daphne

pytestmark = pytest.mark.e2e

# Fixture races given to one test each (Alexandra Park).
RACE_ODDS, RACE_RESULT, RACE_FINISHED, RACE_RECONNECT, RACE_SORT = 11, 12, 13, 14, 15
# The biggest field of the race day (14 starters, handicaps up to 20 m): copied for the phone tests.
RACE_BIG_FIELD = 18


@pytest.fixture(scope="module")
def chromium():
    with chromium_launched() as browser:
        yield browser


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(chromium, request, page_problems):
    """A browser tab; a screenshot of it is saved in test-output/browser/ after the test, and the
    test fails on any JavaScript error, console error or failed request in it."""
    viewport = getattr(request, "param", DESKTOP)
    with browser_tab(chromium, viewport=viewport, name=request.node.name, problems=page_problems) as tab:
        yield tab


PRICES_JS = "JSON.stringify([...document.querySelectorAll('#runners td.odds .price')].map(c => c.textContent))"


def prices(page) -> str:
    return page.evaluate(PRICES_JS)


def races_on(server_database, date: str) -> int:
    """The races of a day in the servers' database: the fixture's 9 and 10, and any race that a
    test which ran before on this worker added to the meeting (race_of_its_own)."""
    return server_database.scalar(
        "SELECT COUNT(*) FROM races_race JOIN races_meeting ON races_meeting.id = races_race.meeting_id"
        " WHERE races_meeting.date = ?",
        date,
    )


def test_the_race_day_page_lists_the_fixture_meetings(page, paced_server, server_database):
    # By date, so that the test does not depend on today's date; "today and upcoming" is
    # checked in tests/test_pages.py with a fixed today.
    page.goto(paced_server.http_url("/?date=2026-12-04"))

    assert "Addington" in page.locator("section.meeting h2").inner_text()
    assert page.locator("table.races tbody tr").count() == races_on(server_database, "2026-12-04") >= 9
    page.locator("a[rel=next]").click()
    page.wait_for_url(re.compile(r"date=2026-12-05$"))
    assert "Alexandra Park" in page.locator("section.meeting h2").inner_text()
    assert page.locator("table.races tbody tr").count() == races_on(server_database, "2026-12-05") >= 10
    assert page.locator("a[rel=prev]").get_attribute("href") == "?date=2026-12-04"
    page.locator("table.races a", has_text="R1").first.click()
    page.wait_for_url(re.compile(r"/races/10/$"))
    assert page.locator("#runners tbody tr").count() >= 8


def test_every_icon_a_page_links_is_served_and_so_is_favicon_ico(page, paced_server):
    page.goto(paced_server.http_url("/"))

    icons = page.locator("link[rel=icon], link[rel=apple-touch-icon]").evaluate_all("links => links.map(l => l.href)")
    assert len(icons) == 3
    for url in icons:
        assert page.request.get(url).status == 200, url
    favicon = page.request.get(paced_server.http_url("/favicon.ico"))
    assert favicon.status == 200 and favicon.headers["content-type"] == "image/x-icon"


@pytest.mark.parametrize("page", [PHONES["360"]], indirect=True, ids=["360"])
def test_the_race_day_fits_a_phone_screen(page, paced_server):
    for path in ("/", "/?date=2026-12-04"):  # today's and upcoming, and a day of long race names
        page.goto(paced_server.http_url(path))

        assert_no_sideways_scrolling(page)
    assert_inside_the_screen(page, "table.races td.race-status .badge")
    assert_inside_the_screen(page, "table.races .race-facts time")


def test_a_race_page_lists_its_starters_and_its_odds_move_on_the_chart(page, paced_server):
    page.goto(paced_server.http_url(f"/races/{RACE_ODDS}/"))
    wait_until_live(page)
    starters = page.request.get(paced_server.http_url(f"/api/races/{RACE_ODDS}/")).json()["starters"]

    rows = page.locator("#runners tbody tr")
    assert rows.count() == len(starters)
    assert rows.locator("th").all_inner_texts()[0].startswith(starters[0]["horse_name"])
    page.wait_for_function("[...document.querySelectorAll('#runners td.odds .price')].length > 0", timeout=10_000)
    assert page.locator("#race-state").text_content() == "Race status: Market open"
    first = prices(page)
    page.wait_for_function(f"(before) => {PRICES_JS} !== before", arg=first, timeout=10_000)
    assert prices(page) != first
    assert page.locator("#runners tbody tr.favourite .fav-badge").count() == 1
    assert page.locator("#runners td.odds.shortening, #runners td.odds.drifting").count() > 0
    drawn = page.evaluate(
        """() => ({
            runners: document.querySelectorAll('#runners tbody tr:not(.scratched)').length,
            lines: document.querySelectorAll('#market-chart svg g.runner-line path').length,
            sparklines: document.querySelectorAll('#runners td.trend svg path').length,
        })"""
    )  # at one moment: a runner the simulated race day scratches has no market from then on
    assert drawn["lines"] == drawn["sparklines"] == drawn["runners"] >= len(starters) - 2


def test_the_result_shows_the_winner_and_is_announced(page, paced_server):
    page.goto(paced_server.http_url(f"/races/{RACE_RESULT}/"))
    wait_until_live(page)

    # The simulated race day: the market, the race, interim placings (perhaps a protest), official.
    page.wait_for_selector("#race-state[data-state=official]", timeout=20_000)

    winner = page.locator("#result li.winner").first.inner_text()  # first of a dead heat, if any
    assert winner.startswith("1 #")
    assert page.locator("#runners tbody tr.winner td.placing").first.inner_text().startswith("1st")
    assert page.locator("#announcer").inner_text().startswith("Official result: 1st ")
    # The race is over; the page is still connected, ready for a correction.
    assert page.locator("#race-state").get_attribute("data-state") == "official"
    assert page.locator("#race-state").text_content() == "Race status: Official"
    assert page.locator("#connection").get_attribute("data-state") == "live"
    assert page.locator("#connection").text_content() == "Connection: Live updates"


def test_an_official_race_shows_its_result_straight_away(page, paced_server):
    page.goto(paced_server.http_url(f"/races/{RACE_FINISHED}/"))
    page.wait_for_selector("#race-state[data-state=official]", timeout=20_000)

    page.goto(paced_server.http_url(f"/races/{RACE_FINISHED}/"))

    assert page.locator("#result li.winner").first.is_visible()  # rendered by the server, before any socket
    assert page.locator("#race-state .label").inner_text() == "Official"
    wait_until_live(page)
    # The market so far comes from the odds-history API, fetched after initial_state.
    page.wait_for_selector("#market-chart svg g.runner-line", timeout=10_000)


def test_runners_sort_by_odds_with_the_favourite_first(page, paced_server):
    page.goto(paced_server.http_url(f"/races/{RACE_SORT}/"))
    page.wait_for_function("document.querySelectorAll('#runners td.odds .price').length > 0", timeout=10_000)

    page.get_by_role("button", name="Odds").click()

    prices = [float(text) for text in page.locator("#runners tbody td.odds .price").all_inner_texts()]
    assert prices == sorted(prices)
    assert page.locator("#runners tbody tr").first.get_attribute("class").find("favourite") >= 0
    page.get_by_role("button", name="Number").click()
    numbers = [int(n) for n in page.locator("#runners tbody tr td:first-child").all_inner_texts()]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize("page", list(PHONES.values()), indirect=True, ids=list(PHONES))
def test_every_runners_odds_fit_a_phone_screen_without_scrolling(page, paced_server):
    race_id = paced_server.database.race_of_its_own(copy_of=RACE_BIG_FIELD)
    token = feed_token(paced_server)
    page.goto(paced_server.http_url(f"/races/{race_id}/"))
    wait_until_live(page)
    rows = page.locator("#runners tbody tr")
    horse_ids = [int(h) for h in rows.evaluate_all("rows => rows.map(r => r.dataset.horseId)")]
    # Three-digit prices, then every runner moves: the widest odds cells a phone will see.
    opening = [2.4, 187.5, 999.99, 12.0, 8.8, 151.0, 33.0, 6.1, 99.5, 17.2, 450.0, 45.0, 3.9, 26.0]
    latest = [2.1, 219.24, 850.0, 13.5, 7.7, 181.25, 28.0, 6.6, 101.0, 15.0, 500.0, 52.5, 4.2, 24.0]
    assert len(horse_ids) == len(latest)

    for market in (opening, latest):
        odds = [{"horse_id": h, "odds": price} for h, price in zip(horse_ids, market, strict=True)]
        post_feed(page, paced_server, f"/api/races/{race_id}/odds/", odds, token)
    marked = f"document.querySelectorAll('#runners td.odds .mark').length === {len(latest)}"
    page.wait_for_function(marked, timeout=10_000)

    assert json.loads(prices(page)) == [f"{price:.2f}" for price in latest]
    assert_no_sideways_scrolling(page)
    for part in ("td.odds", "td.odds .mark", "td.odds .price", ".fav-badge"):
        assert_inside_the_screen(page, f"#runners {part}")

    results = [{"horse_id": h, "placing": place, "finished": True} for place, h in enumerate(horse_ids, 1)]
    post_feed(page, paced_server, f"/api/races/{race_id}/results/", {"results": results}, token)
    page.wait_for_selector("#runners.has-result td.placing", timeout=10_000)

    assert page.locator("#race-state .label").inner_text() == "Official"
    assert_no_sideways_scrolling(page)  # the result column takes its room from the names
    for part in ("td.odds .price", "td.placing"):
        assert_inside_the_screen(page, f"#runners {part}")


def test_the_board_reconnects_after_a_server_restart_and_rebuilds(
    page, page_problems, server_database, tmp_path_factory
):
    # While the server is down the browser reports each refused attempt; nothing else may go wrong.
    page_problems.expect(r"^console: WebSocket connection to .* failed: .*net::ERR_CONNECTION_REFUSED")
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
        assert page.locator("#connection .label").inner_text() == "Live updates"
    finally:
        server.stop()
