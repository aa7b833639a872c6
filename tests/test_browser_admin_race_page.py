"""The race office's race page and race-day view in a real headless Chromium against a real Daphne:
a feed opens a race's market, moves its odds, scratches its favourite and closes it, and the race's
admin page shows each as it arrives (status, odds, favourite, viewers) on a desktop and a 390 px
phone; the race-day view lists the day's races with what is due. Screenshots of each are left in
test-output/browser/."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest

from tests.browser import (
    DESKTOP,
    PHONES,
    SHOWN_WITHIN_MS,
    PageProblems,
    assert_inside_the_screen,
    browser_tab,
    chromium_launched,
    screenshot_path,
)
from tests.servers import start_daphne
from tests.test_browser_race_day import RACE_OF_TEN, RaceFeed

pytestmark = pytest.mark.e2e

USERNAME, PASSWORD = "office-browser", "race-office-browser-password"  # noqa: S105 - a test database's
PHONE = PHONES["390"]


@pytest.fixture(scope="module")
def chromium():
    with chromium_launched() as browser:
        yield browser


@pytest.fixture(scope="module")
def office_server(server_database, tmp_path_factory):
    """A real Daphne with no simulated markets: every change to a race is the feed's, when the
    test posts it; and a race office's login."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("office"), SIMULATION_ENABLED="0")
    server_database.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.filter(username={USERNAME!r}).delete()\n"
        f"User.objects.create_superuser({USERNAME!r}, 'office@example.com', {PASSWORD!r})\n"
        "print('created')\n"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(office_server) -> str:
    return office_server.database.feed_token(username="office-browser-feed")


@pytest.fixture
def open_tab(chromium, request):
    """Open tabs (viewport, name), logged in to the admin; each is screenshotted and checked for
    errors at the end."""
    with contextlib.ExitStack() as tabs:

        def open_(viewport: dict, name: str, server, **context_options: object):
            problems = PageProblems()
            tab = tabs.enter_context(
                browser_tab(
                    chromium, viewport=viewport, name=f"{request.node.name}-{name}", problems=problems,
                    **context_options,
                )
            )  # fmt: skip
            tab.goto(server.http_url("/admin/login/"))
            tab.fill("#id_username", USERNAME)
            tab.fill("#id_password", PASSWORD)
            tab.click("input[type=submit]")
            tab.wait_for_selector("#user-tools", timeout=SHOWN_WITHIN_MS)
            return tab

        yield open_


def odds_text(page) -> list[tuple[str, str]]:
    """(row classes, odds) of each runner on the race's odds board."""
    rows = page.locator("#race-live-odds tbody tr").evaluate_all(
        "rows => rows.map((row) => [row.className.trim(), row.querySelector('td.odds').innerText.trim()])"
    )
    return [(classes, odds) for classes, odds in rows]


def wait_for(page, expression: str, arg: object = None) -> None:
    page.wait_for_function(expression, arg=arg, timeout=SHOWN_WITHIN_MS)


def wait_for_status(page, status: str) -> None:
    page.wait_for_selector(f"#race-live-status[data-status={status}]", timeout=SHOWN_WITHIN_MS)


def wait_for_viewers(page, text: str) -> None:
    wait_for(page, "(text) => document.querySelector('#race-live-viewers')?.innerText === text", text)


def wait_for_favourite(page, horse_id: int) -> None:
    page.wait_for_selector(f"#race-live-odds tr.favourite[data-horse-id='{horse_id}']", timeout=SHOWN_WITHIN_MS)


def test_the_race_page_shows_the_market_open_move_and_close_as_it_happens(open_tab, office_server, token):
    desktop = open_tab(DESKTOP, "desktop", office_server)
    race = RaceFeed(desktop, office_server, token, copy_of=RACE_OF_TEN)
    h = race.horses
    page_path = f"/admin/races/race/{race.race_id}/change/"
    desktop.goto(office_server.http_url(page_path))
    desktop.wait_for_selector("#race-live-connection[data-state=live]", timeout=SHOWN_WITHIN_MS)
    assert desktop.locator("#race-live-status").inner_text() == "Scheduled"
    assert desktop.locator("#race-live-odds caption").inner_text() == "No odds yet"
    wait_for_viewers(desktop, "No one watching")  # the page watches the meeting, not (yet) the race

    # The feed's first odds open the market: the page hears it in its meeting's summaries, then
    # follows the race's stream for the odds (and is one of its viewers).
    race.odds(h)  # 2.50, 5.60, 8.70 ...: the first is the favourite
    wait_for_status(desktop, "open")
    wait_for_favourite(desktop, h[0])
    assert desktop.locator("#race-live-status").inner_text() == "Open"
    assert odds_text(desktop)[:3] == [("favourite", "2.50"), ("", "5.60"), ("", "8.70")]
    # What is due and the moves were the page's at load: reload for the open market's.
    assert desktop.locator("#race-live-stale").is_visible() and desktop.locator(".race-live-moves").is_hidden()
    wait_for_viewers(desktop, "Just you watching")

    # The market moves: the favourite drifts, the last runner is backed in.
    race.post("odds/", [{"horse_id": horse, "odds": round(30.0 - 2.5 * i, 2)} for i, horse in enumerate(h)])
    wait_for_favourite(desktop, h[-1])
    assert odds_text(desktop)[0] == ("", "30.00") and odds_text(desktop)[-1] == ("favourite", "7.50")

    phone = open_tab(PHONE, "phone", office_server)
    phone.goto(office_server.http_url(page_path))
    wait_for_favourite(phone, h[-1])
    wait_for_viewers(desktop, "2 watching")

    # A late scratching of the favourite: it shows as scratched, and the next shortest is favourite.
    race.post(f"starters/{h[-1]}/scratch/")
    for page in (desktop, phone):
        page.wait_for_selector(f"#race-live-odds tr.scratched[data-horse-id='{h[-1]}']", timeout=SHOWN_WITHIN_MS)
        wait_for_favourite(page, h[-2])
        assert odds_text(page)[-1] == ("scratched", "SCR")

    race.post("status/", {"status": "closed"})
    for page in (desktop, phone):
        wait_for_status(page, "closed")
        assert page.locator("#race-live-status").inner_text() == "Closed — racing"
        assert odds_text(page)[-2] == ("favourite", "10.00")  # the odds stay as they last were
    assert_inside_the_screen(phone, "#race-live")
    assert_inside_the_screen(phone, "#race-live-odds")
    for name, page in (("desktop", desktop), ("phone", phone)):  # the box alone, besides the whole page's
        page.locator("#race-live").screenshot(path=screenshot_path(f"admin-race-live-box-{name}"))

    # Loaded afresh, the page says the same from the database, with the moves a closed race has.
    desktop.goto(office_server.http_url(page_path))
    assert desktop.locator("#race-live-status").inner_text() == "Closed — racing"
    assert desktop.locator(".race-live-due").inner_text() == "Next: Enter interim placings"
    assert desktop.locator(".race-live-moves a").all_inner_texts() == ["Abandon"]
    assert odds_text(desktop)[-2:] == [("favourite", "10.00"), ("scratched", "SCR")]

    # Without JavaScript: the race as loaded, and a word that it is not live.
    still = open_tab(PHONE, "no-javascript", office_server, java_script_enabled=False)
    still.goto(office_server.http_url(page_path))
    assert still.locator("#race-live-status").inner_text() == "Closed — racing"
    assert odds_text(still)[-2:] == [("favourite", "10.00"), ("scratched", "SCR")]
    assert still.locator("#race-live-viewers").is_hidden() and still.locator("#race-live-connection").is_hidden()
    assert "Live updates and viewers need JavaScript" in still.locator("#race-live").inner_text()
    assert_inside_the_screen(still, "#race-live")


def test_the_race_day_view_lists_the_days_races_with_what_is_due(open_tab, office_server):
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = open_tab(viewport, name, office_server)
        page.goto(office_server.http_url("/admin/"))
        page.screenshot(path=screenshot_path(f"admin-home-{name}"))  # the race day leads the home page
        page.click("text=Today's races and what is due next")
        page.wait_for_selector(".race-day-date", timeout=SHOWN_WITHIN_MS)
        page.fill("#id_date", "2026-12-05")
        page.click(".race-day-date input[type=submit]")
        page.wait_for_selector("#race-day", timeout=SHOWN_WITHIN_MS)

        assert page.locator("h1").inner_text() == "Race day: Saturday 5 December 2026"
        rows = page.locator("#race-day tbody tr")
        assert rows.count() >= 9
        starts = [
            dt.datetime.fromisoformat(start)
            for start in page.locator("#race-day td.start time").evaluate_all("times => times.map((t) => t.dateTime)")
        ]
        assert len(starts) >= 9 and starts == sorted(starts)  # in start order, other tests' races among them
        assert_inside_the_screen(page, "#race-day")
        assert_inside_the_screen(page, "#race-day a.button")
