"""The race board through a race day as it really happens, in a real headless Chromium against a
real Daphne: a feed drives each race (as races.services' feed Actor, over the feed API) through
scratchings, a reinstatement, a driver change, a delay, the market, interim placings with a dead
heat, a protest, the official result, and an abandonment; the page shows each, on a desktop and at
phone widths, and says it again when rendered afresh without JavaScript."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from tests.browser import (
    DESKTOP,
    PHONES,
    SHOWN_WITHIN_MS,
    PageProblems,
    assert_inside_the_screen,
    assert_no_sideways_scrolling,
    browser_tab,
    chromium_launched,
    post_feed,
    screenshot_path,
    wait_until_live,
)
from tests.servers import feed_token, start_daphne

pytestmark = pytest.mark.e2e

# Fixture races copied for a test each (Alexandra Park, 5 December 2026): a field of 10, and the
# biggest of the day (14, handicaps up to 20 m) for the phones.
RACE_OF_TEN, RACE_BIG_FIELD = 10, 18
RACE_DAY = "/?date=2026-12-05"


@pytest.fixture(scope="module")
def chromium():
    with chromium_launched() as browser:
        yield browser


@pytest.fixture(scope="module")
def feed_server(server_database, tmp_path_factory):
    """A real Daphne with no simulated markets, shared by this module: every change to a race is
    the feed's, when the test posts it."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("race-day"), SIMULATION_ENABLED="0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(feed_server) -> str:
    return feed_token(feed_server)


@pytest.fixture
def open_tab(chromium, request):
    """Open tabs (viewport, name); each is screenshotted and checked for errors at the end."""
    with contextlib.ExitStack() as tabs:

        def open_(viewport: dict, name: str, **context_options: object):
            return tabs.enter_context(
                browser_tab(
                    chromium, viewport=viewport, name=f"{request.node.name}-{name}", problems=PageProblems(),
                    **context_options,
                )
            )  # fmt: skip

        yield open_


class RaceFeed:
    """A race of its own, driven through the feed API as a tote's feed drives it."""

    def __init__(self, page, server, token: str, *, copy_of: int) -> None:
        self.page, self.server, self.token = page, server, token
        self.race_id = server.database.race_of_its_own(copy_of=copy_of)
        self.starters = page.request.get(server.http_url(f"/api/races/{self.race_id}/")).json()["starters"]
        self.horses = [s["horse_id"] for s in self.starters]

    def post(self, path: str, body: object = None, *, expect: int = 201) -> dict:
        return post_feed(
            self.page, self.server, f"/api/races/{self.race_id}/{path}", body or {}, self.token, expect=expect
        )

    def odds(self, horses: list[int], *, expect: int = 201) -> None:
        self.post(
            "odds/", [{"horse_id": h, "odds": round(2.5 + 3.1 * i, 2)} for i, h in enumerate(horses)], expect=expect
        )

    def placings(self, placings: dict[int, int], *, official: bool) -> None:
        results = [{"horse_id": h, "placing": p, "finished": True} for h, p in placings.items()]
        self.post("results/", {"results": results, "official": official})

    def starter(self, horse_id: int) -> dict:
        return next(s for s in self.starters if s["horse_id"] == horse_id)

    @property
    def path(self) -> str:
        return f"/races/{self.race_id}/"


def row(page, horse_id: int):
    return page.locator(f"#runners tr[data-horse-id='{horse_id}']")


def wait_for_status(page, status: str) -> None:
    page.wait_for_selector(f"#race-state[data-state={status}]", timeout=SHOWN_WITHIN_MS)


def wait_for_text(page, selector: str, text: str) -> None:
    """Wait until the first node matching ``selector`` reads ``text`` (spaces as they render)."""
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.innerText.trim() === text",
        arg=[selector, text],
        timeout=SHOWN_WITHIN_MS,
    )


def announced(page) -> str:
    return page.locator("#announcer").inner_text()


def later_start(minutes: int) -> dt.datetime:
    """A start time ``minutes`` from now in the venues' time zone, to the minute."""
    return (dt.datetime.now(ZoneInfo(settings.TIME_ZONE)) + dt.timedelta(minutes=minutes)).replace(
        second=0, microsecond=0
    )


def race_day_status(page, race_id: int) -> str:
    return page.locator(f"table.races tr:has(a[href='/races/{race_id}/']) td.race-status").inner_text()


def test_a_race_day_as_it_really_happens_on_the_race_page(open_tab, feed_server, token):
    page = open_tab(DESKTOP, "live")
    race = RaceFeed(page, feed_server, token, copy_of=RACE_OF_TEN)
    h = race.horses
    page.goto(feed_server.http_url(race.path))
    wait_until_live(page)
    assert page.locator("#race-state .label").inner_text() == "Upcoming"

    # The field: a new driver, a scratching undone, another that stands.
    drawn = race.starter(h[1])["driver_name"]
    race.post(f"starters/{h[1]}/driver/", {"driver_name": "Blair Orange"})
    page.wait_for_selector(f"#runners tr[data-horse-id='{h[1]}'] td.wide-only .tag.changed", timeout=SHOWN_WITHIN_MS)
    driver = row(page, h[1]).locator("td.wide-only").first
    assert driver.inner_text() == "Blair Orange changed"
    assert driver.locator(".tag.changed").get_attribute("title") == f"Driver changed: drawn with {drawn}"
    number, name = race.starter(h[1])["runner_number"], race.starter(h[1])["horse_name"]
    assert announced(page) == f"Driver change: Blair Orange now drives number {number} {name}, replacing {drawn}."

    race.post(f"starters/{h[2]}/scratch/")
    page.wait_for_selector(f"#runners tr.scratched[data-horse-id='{h[2]}']", timeout=SHOWN_WITHIN_MS)
    assert row(page, h[2]).locator("td.odds").inner_text() == "SCR"
    assert announced(page).startswith("Scratched: number ")
    race.post(f"starters/{h[2]}/reinstate/")
    page.wait_for_selector(f"#runners tr[data-horse-id='{h[2]}']:not(.scratched)", timeout=SHOWN_WITHIN_MS)
    assert announced(page).startswith("Reinstated: number ")

    # A delay: the new start time, and why.
    starts = later_start(90)
    race.post("status/", {"status": "scheduled", "race_datetime": starts.isoformat(), "reason": "Ambulance attending"})
    page.wait_for_selector("#race-delay:not([hidden])", timeout=SHOWN_WITHIN_MS)
    assert page.locator("#race-note").inner_text() == f"Start delayed to {starts:%H:%M} – Ambulance attending."
    assert page.locator("time[data-field=race_datetime]").inner_text() == f"{starts:%H:%M}"
    assert re.match(r"· starts in 1 h (29|30) m", page.locator("#countdown").inner_text())
    assert announced(page) == f"Start delayed to {starts:%H:%M}: Ambulance attending."
    race_day = open_tab(DESKTOP, "race-day")
    race_day.goto(feed_server.http_url(RACE_DAY))
    assert race_day_status(race_day, race.race_id) == "Upcoming Delayed"

    # The market, then a late scratching: its odds go, the market goes on without it.
    race.odds(h)
    wait_for_status(page, "open")
    page.wait_for_function(
        f"document.querySelectorAll('#runners td.odds .price').length === {len(h)}", timeout=SHOWN_WITHIN_MS
    )
    assert page.locator("#race-delay").is_visible()  # still delayed
    race.post(f"starters/{h[0]}/scratch/")  # the favourite
    page.wait_for_selector(f"#runners tr.scratched[data-horse-id='{h[0]}']", timeout=SHOWN_WITHIN_MS)
    assert row(page, h[0]).locator("td.odds").inner_text() == "SCR"
    assert page.locator("#runners td.odds .price").count() == len(h) - 1
    assert row(page, h[1]).locator(".fav-badge").count() == 1  # the next shortest
    race.odds(h[1:])

    race.post("status/", {"status": "closed"})
    wait_for_status(page, "closed")
    assert page.locator("#race-state .label").inner_text() == "Closed – racing"
    assert page.locator("#race-delay").is_hidden() and page.locator("#race-note").is_hidden()
    assert page.locator("#countdown").inner_text() == ""
    assert announced(page) == "Betting closed: they are racing."

    # Interim placings with a dead heat for first, a protest, new interim placings, official.
    dead_heat = {h[1]: 1, h[2]: 1, **{horse: place for place, horse in enumerate(h[3:], 3)}}
    race.placings(dead_heat, official=False)
    wait_for_status(page, "interim")
    wait_for_text(page, f"#runners tr[data-horse-id='{h[1]}'] td.placing", "1st DH")
    assert row(page, h[2]).locator("td.placing").inner_text() == "1st DH"
    assert row(page, h[3]).locator("td.placing").inner_text() == "3rd"
    assert row(page, h[0]).locator("td.placing").inner_text() == ""  # scratched: did not run
    assert page.locator("#placing-heading").text_content() == "Interim"
    assert page.locator("#result-heading").inner_text() == "Interim result"
    assert page.locator("#result-note").inner_text() == "Not yet official: these placings may change."
    assert page.locator("#result-list li .dh").count() == 2
    assert announced(page).startswith("Interim result, not yet official: 1st dead heat number ")

    race.post("status/", {"status": "protest", "reason": "Inquiry into the finish"})
    wait_for_status(page, "protest")
    assert page.locator("#race-note").inner_text() == "Protest – Inquiry into the finish. The placings may change."
    assert page.locator("#result-note").inner_text() == "Under protest: these placings may change."
    assert announced(page) == "Protest: the placings may change. Inquiry into the finish"

    upheld = {**dead_heat, h[2]: 2}
    race.placings(upheld, official=False)
    wait_for_status(page, "interim")
    wait_for_text(page, f"#runners tr[data-horse-id='{h[1]}'] td.placing", "1st")
    assert row(page, h[2]).locator("td.placing").inner_text() == "2nd"
    race.placings(upheld, official=True)
    wait_for_status(page, "official")
    assert page.locator("#race-state .label").inner_text() == "Official"
    assert page.locator("#result-heading").inner_text() == "Result"
    assert page.locator("#result-note").is_hidden()
    assert page.locator("#runners td.placing.interim").count() == 0
    assert page.locator("#result li.winner").inner_text().startswith(f"1 #{number} {name}")
    assert announced(page).startswith(f"Official result: 1st number {number} {name}, 2nd number ")
    assert page.locator("#connection .label").inner_text() == "Live updates"  # apart from the race's own state

    # Rendered afresh without JavaScript, the page says the same.
    plain = open_tab(DESKTOP, "no-js", java_script_enabled=False)
    plain.goto(feed_server.http_url(race.path))
    assert plain.locator("#race-state .label").inner_text() == "Official"
    assert plain.locator("#connection").is_hidden()  # no script, no live link: not "Connecting…" forever
    assert plain.locator(f"#runners tr.scratched[data-horse-id='{h[0]}'] td.odds").inner_text() == "SCR"
    assert row(plain, h[1]).locator("td.wide-only").first.inner_text() == "Blair Orange changed"
    assert row(plain, h[1]).locator("td.placing").inner_text() == "1st"
    assert plain.locator("#result li.winner").inner_text().startswith(f"1 #{number} {name}")
    race_day.reload()
    assert race_day_status(race_day, race.race_id) == f"Official – won by {name}"


def test_an_abandoned_race_stops_its_market_and_has_no_result(open_tab, feed_server, token):
    page = open_tab(DESKTOP, "desktop")
    phone = open_tab(PHONES["360"], "360")
    race = RaceFeed(page, feed_server, token, copy_of=RACE_OF_TEN)
    for tab in (page, phone):
        tab.goto(feed_server.http_url(race.path))
        wait_until_live(tab)
    race.odds(race.horses)
    wait_for_status(page, "open")
    page.wait_for_selector("#runners .fav-badge", timeout=SHOWN_WITHIN_MS)

    race.post("status/", {"status": "abandoned", "reason": "Track unsafe after rain"})
    for tab in (page, phone):
        wait_for_status(tab, "abandoned")
        assert tab.locator("#race-state .label").inner_text() == "Abandoned"
        assert tab.locator("#race-note").inner_text() == "Abandoned – Track unsafe after rain. There is no result."
        assert tab.locator("#result").is_hidden()
        assert tab.locator("#runners td.odds .price").count() == 0  # the odds stop
        assert tab.locator("#runners .fav-badge").count() == 0
        assert tab.locator("#countdown").inner_text() == ""
    assert announced(page) == "Race abandoned: there is no result. Track unsafe after rain"
    assert_no_sideways_scrolling(phone)
    assert_inside_the_screen(phone, "#race-note")
    # Its market and its result are closed for good.
    race.odds(race.horses, expect=409)
    race.post(
        "results/", {"results": [{"horse_id": h, "placing": 1, "finished": True} for h in race.horses]}, expect=409
    )

    page.reload()
    wait_until_live(page)
    assert page.locator("#race-state .label").inner_text() == "Abandoned"
    assert page.locator("#race-note").is_visible() and page.locator("#result").is_hidden()
    page.goto(feed_server.http_url(RACE_DAY))
    assert race_day_status(page, race.race_id) == "Abandoned"


def test_the_race_day_follows_its_races_live_and_a_race_page_counts_its_viewers(open_tab, feed_server, token):
    desktop, phone = open_tab(DESKTOP, "desktop"), open_tab(PHONES["360"], "360")
    race = RaceFeed(desktop, feed_server, token, copy_of=RACE_OF_TEN)  # before the pages: in their day's races
    favourite = race.starter(race.horses[0])  # the shortest of the odds it will be given
    for tab in (desktop, phone):
        tab.goto(feed_server.http_url("/"))
        tab.evaluate("window.neverReloaded = true")
        wait_until_live(tab)
    in_next_to_go = f"#next-to-go tr[data-race-id='{race.race_id}']"
    in_meeting = f"table.races tr[data-race-id='{race.race_id}']"

    # Put back to start in three minutes, it goes first in next to go and counts down.
    starts = (dt.datetime.now(ZoneInfo(settings.TIME_ZONE)) + dt.timedelta(minutes=3)).replace(microsecond=0)
    race.post("status/", {"status": "scheduled", "race_datetime": starts.isoformat()})
    for tab in (desktop, phone):
        tab.wait_for_selector(
            f"#next-to-go tbody tr:first-child[data-race-id='{race.race_id}']", timeout=SHOWN_WITHIN_MS
        )
        countdown = tab.locator(f"{in_next_to_go} td.starts-in").inner_text()
        assert re.fullmatch(r"[12] m \d\d s", countdown), countdown
        tab.wait_for_function(
            "([selector, before]) => document.querySelector(selector).innerText !== before",
            arg=[f"{in_next_to_go} td.starts-in", countdown], timeout=SHOWN_WITHIN_MS,
        )  # fmt: skip
    assert race_day_status(desktop, race.race_id) == "Upcoming Delayed"
    assert desktop.locator(f"{in_meeting} td.start").inner_text() == f"{starts:%H:%M}"  # it had none

    # Fans open the race: its page counts them, and so does the race day (which is not one of them).
    fan = open_tab(PHONES["390"], "race-page")
    fan.goto(feed_server.http_url(race.path))
    wait_for_text(fan, "#viewers", "Just you watching")
    assert fan.locator("#viewers").get_attribute("aria-live") is None  # read, never announced
    open_tab(DESKTOP, "race-page-2").goto(feed_server.http_url(race.path))
    wait_for_text(fan, "#viewers", "2 watching")
    wait_for_text(desktop, f"{in_next_to_go} td.viewers", "2")
    wait_for_text(desktop, f"{in_meeting} td.viewers", "2")
    wait_for_text(phone, f"{in_next_to_go} .viewers-words", "· 2\u00a0watching")

    # The market opens: status and favourite change in place.
    race.odds(race.horses)
    wait_for_text(desktop, f"{in_meeting} td.race-status", "Market open Delayed")
    shown = f"#{favourite['runner_number']} {favourite['horse_name']} 2.50"
    assert desktop.locator(f"{in_meeting} td.favourite").inner_text() == shown
    assert desktop.locator(f"{in_next_to_go} td.favourite").inner_text() == shown
    wait_for_text(phone, f"{in_next_to_go} .race-fav", f"Fav {shown}")

    # They race: it leaves next to go. Then its result.
    race.post("status/", {"status": "closed"})
    for tab in (desktop, phone):
        tab.wait_for_selector(in_next_to_go, state="detached", timeout=SHOWN_WITHIN_MS)
    assert race_day_status(desktop, race.race_id) == "Closed – racing"
    race.placings({h: place for place, h in enumerate(race.horses, 1)}, official=True)
    wait_for_text(desktop, f"{in_meeting} td.race-status", f"Official – won by {favourite['horse_name']}")
    wait_for_text(phone, f"{in_meeting} td.race-status", f"Official\nwon by {favourite['horse_name']}")
    for tab in (desktop, phone):
        assert tab.evaluate("window.neverReloaded") is True  # all of it in place
    assert_no_sideways_scrolling(phone)
    for part in ("#next-to-go td.starts-in", "#next-to-go .race-fav", "#connection"):
        assert_inside_the_screen(phone, part)
    phone.screenshot(path=screenshot_path("race-day-phone-360-live"), full_page=True)


def test_every_state_of_a_race_fits_a_phone(open_tab, feed_server, token):
    phones = {width: open_tab(viewport, width) for width, viewport in PHONES.items()}
    race = RaceFeed(next(iter(phones.values())), feed_server, token, copy_of=RACE_BIG_FIELD)
    h = race.horses
    for tab in phones.values():
        tab.goto(feed_server.http_url(race.path))
        wait_until_live(tab)

    def shown(stage: str, *parts: str) -> None:
        for width, tab in phones.items():
            assert_no_sideways_scrolling(tab)
            for part in parts:
                assert_inside_the_screen(tab, part)
            tab.screenshot(path=screenshot_path(f"race-day-phone-{width}-{stage}"), full_page=True)

    race.post(f"starters/{h[1]}/scratch/")
    race.post(f"starters/{h[0]}/driver/", {"driver_name": "Zachary Butcher-Ellingham"})  # a long name
    # Three-digit prices, the widest a phone will see.
    race.post(
        "odds/", [{"horse_id": horse, "odds": [2.1, 219.24, 850.0, 13.5][i % 4]} for i, horse in enumerate(h) if i != 1]
    )
    race.post(f"starters/{h[2]}/scratch/")  # late
    for tab in phones.values():
        tab.wait_for_selector(f"#runners tr.scratched[data-horse-id='{h[2]}']", timeout=SHOWN_WITHIN_MS)
        assert row(tab, h[0]).locator(".driver-change").inner_text() == "Driver: Zachary Butcher-Ellingham new"
        assert tab.locator("#runners td.odds .scr").count() == 2
    shown("field", "#runners td.odds .scr", "#runners .driver-change", "#runners td.odds .price", "#runners .fav-badge")

    # A dead heat for first and another for third.
    runners = [horse for horse in h if horse not in (h[1], h[2])]
    placings = {horse: [1, 1, 3, 3][n] if n < 4 else n + 1 for n, horse in enumerate(runners)}
    race.placings(placings, official=False)
    for tab in phones.values():
        wait_for_status(tab, "interim")
        tab.wait_for_selector("#runners td.placing .dh", timeout=SHOWN_WITHIN_MS)
        assert tab.locator("#runners td.placing .dh").count() == 4
    shown("interim", "#runners td.placing", "#runners td.placing .dh", "#race-state", "#result-list li .dh")

    race.post("status/", {"status": "protest", "reason": "The stewards are looking at the home turn"})
    for tab in phones.values():
        wait_for_status(tab, "protest")
    shown("protest", "#race-note", "#race-state")

    race.placings(placings, official=True)
    for tab in phones.values():
        wait_for_status(tab, "official")
    shown("official", "#runners td.placing", "#result-list li")

    tab = phones["360"]
    tab.goto(feed_server.http_url(RACE_DAY))
    winners = " and ".join(race.starter(horse)["horse_name"] for horse in runners[:2])
    assert race_day_status(tab, race.race_id) == f"Official\ndead heat: {winners}"
    assert_no_sideways_scrolling(tab)
    assert_inside_the_screen(tab, "table.races td.race-status .won-by")
