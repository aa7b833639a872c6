"""The board's pages as the server renders them (the browser tests drive them live)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from live.board.labels import starts_in
from races.models import OddsSnapshot, Race, Source
from races.services import (
    Actor,
    odds_snapshot_record,
    race_result_record,
    race_status_change,
    starter_driver_change,
    starter_scratch,
)
from tests import factories
from tests.servers import FIXTURE

pytestmark = pytest.mark.django_db

FEED = Actor(Source.FEED)


@pytest.fixture
def race_day():
    call_command("loaddata", str(FIXTURE), verbosity=0)


@pytest.fixture
def today(monkeypatch):
    def set_today(day: dt.date) -> None:
        monkeypatch.setattr("live.board.views.timezone.localdate", lambda: day)

    return set_today


@pytest.fixture
def now(monkeypatch, today):
    """Set the time the race day is rendered at (and its day), in the venues' time."""

    def set_now(at: dt.datetime) -> None:
        today(at.date())
        monkeypatch.setattr("live.board.views.timezone.now", lambda: at)

    return set_now


NZ = dt.timezone(dt.timedelta(hours=13))  # New Zealand's summer time, the fixture's offset


def test_the_race_day_shows_today_and_upcoming_meetings(client, race_day, today):
    today(dt.date(2026, 12, 4))

    page = client.get("/").content.decode()

    assert "Today and upcoming" in page
    assert "Addington" in page and "Alexandra Park" in page
    meetings = page.split('<section class="meeting"', 1)[1]
    assert meetings.count('href="/races/') == 2 * 19  # number and name link to each race
    assert _day_config(page)["subscriptions"] == [{"date": "2026-12-04"}, {"date": "2026-12-05"}]


def test_after_the_last_meeting_it_points_to_the_last_one(client, race_day, today):
    today(dt.date(2027, 1, 10))

    page = client.get("/").content.decode()

    assert "No meetings today or coming up" in page
    assert "?date=2026-12-05" in page


def test_one_day_with_previous_and_next_links(client, race_day):
    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    assert "Friday 4 December 2026" in page and "Addington" in page and "Alexandra Park" not in page
    assert 'rel="next" href="?date=2026-12-05"' in page
    assert "Next to go" not in page  # about now: on today's page
    config = _day_config(page)
    assert config["subscriptions"] == [{"date": "2026-12-04"}] and config["nextToGo"] is None


def test_a_bad_date_falls_back_to_today_with_a_notice(client, race_day, today):
    today(dt.date(2026, 12, 4))

    page = client.get("/", {"date": "someday"}).content.decode()

    assert "is not a date" in page and "Addington" in page


def test_an_official_race_shows_its_winner_on_the_race_day(client, race_day):
    horse_ids = list(Race.objects.get(pk=2).starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=2, placings={h: i for i, h in enumerate(horse_ids, 1)}, declared_at=timezone.now(), source="feed"
    )
    winner = Race.objects.get(pk=2).starters.get(placing=1).horse.name

    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    assert (
        f'<span class="badge official">Official</span><span class="won-by"><span class="wide-only"> –</span> won by <strong>{winner}</strong>'
        in page
    )


def test_the_race_day_shows_each_races_real_status(client, race_day):
    now = timezone.now()
    horses = {pk: list(Race.objects.get(pk=pk).starters.values_list("horse_id", flat=True)) for pk in range(2, 9)}
    odds_snapshot_record(race_id=2, odds=[(h, 5.0) for h in horses[2]], source="feed", taken_at=now)
    race_status_change(race_id=3, status="closed", at=now, actor=FEED)
    race_result_record(race_id=4, placings=_ranked(horses[4]), declared_at=now, source="feed", official=False)
    race_result_record(race_id=5, placings=_ranked(horses[5]), declared_at=now, source="feed", official=False)
    race_status_change(race_id=5, status="protest", at=now, actor=FEED, reason="Interference")
    race_status_change(race_id=6, status="abandoned", at=now, actor=FEED, reason="Track unsafe")
    delayed_to = Race.objects.get(pk=7).race_datetime + dt.timedelta(minutes=10)
    race_status_change(race_id=7, status="scheduled", at=now, actor=FEED, race_datetime=delayed_to)

    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    statuses = re.findall(r'<td class="race-status">(.*?)</td>', page)
    assert [re.sub(r"<[^>]+>", "", cell) for cell in statuses] == [
        "Upcoming",
        "Market open",
        "Closed – racing",
        "Interim",  # no winner until it is official
        "Protest",
        "Abandoned",
        "Upcoming Delayed",
        "Upcoming",
        "Upcoming",
    ]
    assert '<span class="badge scheduled">Upcoming</span> <span class="badge delayed">Delayed</span>' in page
    assert '<time datetime="2026-12-04T21:14:00+13:00">21:14</time>' in page  # race 7's new start (21:04)


def test_a_dead_heat_for_first_names_both_winners_on_the_race_day(client):
    race = factories.race_create(starter_count=4)
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=race.pk, placings=dict(zip(horse_ids, [1, 1, 3, 4], strict=True)), declared_at=timezone.now(),
        source="feed",
    )  # fmt: skip
    first, second = (Race.objects.get(pk=race.pk).starters.get(horse_id=h).horse.name for h in horse_ids[:2])

    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    assert f"dead heat: <strong>{first}</strong> and <strong>{second}</strong>" in page


def test_the_race_day_costs_the_same_queries_for_any_number_of_races(client, django_assert_num_queries, now):
    now(dt.datetime(2026, 12, 4, 12, 0, tzinfo=NZ))
    factories.race_create(starter_count=3)
    # The meetings (3), the days around (2), next to go (2) and every race's favourite (2).
    with django_assert_num_queries(9):
        client.get("/")
    for number in range(8):
        race = factories.race_create(starter_count=10)
        horse_ids = list(race.starters.values_list("horse_id", flat=True))
        odds_snapshot_record(
            race_id=race.pk, odds=[(h, 4.0) for h in horse_ids], source="feed", taken_at=timezone.now()
        )
        if number % 2:
            race_result_record(race_id=race.pk, placings=_ranked(horse_ids), declared_at=timezone.now(), source="feed")

    with django_assert_num_queries(9):
        assert client.get("/").status_code == 200
    with django_assert_num_queries(7):  # one day's: no next to go
        assert client.get("/", {"date": "2026-12-04"}).status_code == 200


def test_the_race_day_lists_the_races_next_to_go_with_their_countdowns(client, race_day, now):
    now(dt.datetime(2026, 12, 4, 18, 0, tzinfo=NZ))
    horse_ids = list(Race.objects.get(pk=2).starters.values_list("horse_id", flat=True))
    odds_snapshot_record(
        race_id=2, odds=[(h, 3.5 if i == 1 else 9.0) for i, h in enumerate(horse_ids)], source="feed",
        taken_at=timezone.now(),
    )  # fmt: skip
    race_status_change(race_id=1, status="closed", at=timezone.now(), actor=FEED)  # they are racing: gone
    favourite = Race.objects.get(pk=2).starters.get(horse_id=horse_ids[1])

    page = client.get("/").content.decode()

    next_to_go = page.split('<table class="next" id="next-to-go">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-race-id="(\d+)">', next_to_go)
    assert rows == ["2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]  # soonest first, across meetings
    countdowns = re.findall(r'<td class="num starts-in">(.*?)</td>', next_to_go)
    assert countdowns[:2] == ["37 m 00 s", "1 h 07 m"] and countdowns[-1] == "18 h 55 m"  # Alexandra Park R2, 12:55
    race_2 = re.search(r'<tr data-race-id="2">.*?</tr>', next_to_go, re.DOTALL).group(0)
    assert '<a href="/races/2/">Addington R2</a>' in race_2
    assert (
        f'<td class="favourite wide-only"><span class="no">#{favourite.runner_number}</span> {favourite.horse.name} '
        '<span class="price">3.50</span></td>'
    ) in race_2
    assert '<span class="badge open">Market open</span>' in race_2
    config = _day_config(page)
    assert [race["id"] for race in config["nextToGo"]] == [int(race_id) for race_id in rows]
    assert config["nextToGo"][0]["race_datetime"] == "2026-12-04T18:37:00+13:00" and config["nextToGoRows"] == 10


def test_an_overdue_race_of_an_earlier_day_is_next_to_go_and_followed_by_its_meeting(client, race_day, now):
    now(dt.datetime(2026, 12, 5, 12, 0, tzinfo=NZ))  # yesterday's races never closed
    for race_id in range(1, 9):
        race_status_change(race_id=race_id, status="abandoned", at=timezone.now(), actor=FEED)

    page = client.get("/").content.decode()

    assert re.search(r'<tr data-race-id="9">.*?<td class="num starts-in">Due</td>', page, re.DOTALL)
    assert _day_config(page)["subscriptions"] == [{"meeting_id": "NZ_20261204_ADD"}, {"date": "2026-12-05"}]


def test_no_races_to_go_says_so(client, race_day, now):
    now(dt.datetime(2026, 12, 6, 9, 0, tzinfo=NZ))
    for race in Race.objects.all():
        race_status_change(race_id=race.pk, status="abandoned", at=timezone.now(), actor=FEED)

    page = client.get("/").content.decode()

    assert '<table class="next" id="next-to-go" hidden>' in page
    assert '<p class="notice" id="next-to-go-none">No races to go.</p>' in page


def test_the_race_day_shows_each_races_favourite(client, race_day):
    horse_ids = list(Race.objects.get(pk=3).starters.values_list("horse_id", flat=True))
    odds_snapshot_record(
        race_id=3, odds=[(h, 219.24 - i) for i, h in enumerate(horse_ids)], source="feed", taken_at=timezone.now()
    )
    favourite = Race.objects.get(pk=3).starters.get(horse_id=horse_ids[-1])

    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    row = re.search(r'<tr class="status-open" data-race-id="3">.*?</tr>', page, re.DOTALL).group(0)
    shown = f'<span class="no">#{favourite.runner_number}</span> {favourite.horse.name} <span class="price">{219.24 - len(horse_ids) + 1:.2f}</span>'
    assert f'<td class="favourite day-wide">{shown}</td>' in row
    assert f'<span class="race-fav day-fold"><span class="fav-badge">Fav</span> {shown}</span>' in row  # phone, tablet
    assert '<td class="favourite day-wide">–</td>' in page  # the races with no market yet


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(3 * 86400 + 7 * 3600 + 59, "3 d 7 h"), (2 * 3600 + 5 * 60 + 9, "2 h 05 m"), (12 * 60 + 5, "12 m 05 s"),
     (59, "59 s"), (0, "Due"), (-75, "Due")],
)  # fmt: skip
def test_the_server_counts_down_as_the_script_does(seconds, shown):
    # live/board/static/live/format.js's startsIn, by tests/js/race_day.test.mjs with the same cases.
    assert starts_in(seconds) == shown


def test_a_race_page_renders_its_card_and_its_socket_config(client, race_day):
    page = client.get("/races/1/").content.decode()

    assert "Race 1" in page and 'id="board-config"' in page
    assert _config(page)["socketPath"] == "/ws/live" and _config(page)["meetingId"] == "NZ_20261204_ADD"
    assert '<p class="viewers" id="viewers" hidden></p>' in page  # the script shows how many watch
    assert (
        '<p class="race-state" id="race-state" data-state="scheduled">'
        '<span class="visually-hidden">Race status: </span><span class="label">Upcoming</span>'
    ) in page
    assert _config(page)["statusLabels"]["closed"] == "Closed – racing"  # the script's words are the page's
    assert '<th scope="col" class="num placing" id="placing-heading">Result</th>' in page  # hidden till placings
    assert '<p class="connection" id="connection" data-state="connecting" hidden>' in page  # shown by the script
    assert page.count("data-horse-id=") == Race.objects.get(pk=1).starters.count()
    assert 'type="module"' in page and "race-board.js" in page


def _ranked(horse_ids) -> dict[int, int]:
    return {h: i for i, h in enumerate(horse_ids, 1)}


def _row(page: str, horse_id: int) -> str:
    """Return the runners table's row of one horse."""
    return re.search(rf'<tr data-horse-id="{horse_id}".*?</tr>', page, re.DOTALL).group(0)


def _status(page: str) -> tuple[str, str]:
    """Return the race's status as the page shows it: (its data-state, its label)."""
    found = re.search(
        r'<p class="race-state" id="race-state" data-state="(\w+)">.*?<span class="label">(.*?)</span>', page
    )
    return found.group(1), found.group(2)


def _config(page: str) -> dict:
    return json.loads(re.search(r'<script id="board-config" type="application/json">(.*?)</script>', page).group(1))


def _day_config(page: str) -> dict:
    return json.loads(re.search(r'<script id="day-config" type="application/json">(.*?)</script>', page).group(1))


@pytest.fixture
def race():
    """A race of four runners (numbers 1-4), starting at 19:30 local time."""
    return factories.race_create(starter_count=4)


@pytest.fixture
def horses(race) -> list[int]:
    return list(race.starters.values_list("horse_id", flat=True))


def test_an_official_race_page_shows_the_result_without_javascript(client):
    race = factories.race_create(starter_count=3)
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    race_result_record(
        race_id=race.pk, placings={horse_ids[0]: 2, horse_ids[1]: 1, horse_ids[2]: None},
        declared_at=timezone.now(), source="feed",
    )  # fmt: skip

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert '<li class="winner"><span class="place">1</span> <span class="no">#2</span>' in page
    assert "did not finish" in page
    assert _status(page) == ("official", "Official")
    assert '<h2 id="result-heading">Result</h2>' in page
    assert '<p class="result-note" id="result-note" hidden>' in page
    assert '<table id="runners" class="has-result">' in page
    assert '<td class="num placing">1st</td>' in _row(page, horse_ids[1])


def test_a_race_with_odds_reads_as_market_open(client):
    race = factories.race_create(starter_count=3)
    horse_ids = race.starters.values_list("horse_id", flat=True)
    odds_snapshot_record(
        race_id=race.pk, odds=[(h, 219.24) for h in horse_ids], source=OddsSnapshot.Source.FEED, taken_at=timezone.now()
    )

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("open", "Market open")
    assert '<table id="runners">' in page  # no result column yet
    assert '<p class="race-note" id="race-note" hidden></p>' in page


def test_a_race_they_are_running_reads_closed_racing(client, race):
    race_status_change(race_id=race.pk, status="closed", at=timezone.now(), actor=FEED)

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("closed", "Closed – racing")
    assert '<section class="result" id="result" aria-labelledby="result-heading" hidden>' in page


def test_a_delayed_race_shows_its_new_start_time_and_why(client, race):
    race_status_change(
        race_id=race.pk, status="scheduled", at=timezone.now(), actor=FEED, reason="Ambulance attending",
        race_datetime=race.race_datetime + dt.timedelta(minutes=15),
    )  # fmt: skip

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("scheduled", "Upcoming")
    assert '<p class="race-delay" id="race-delay">Delayed</p>' in page
    assert '<p class="race-note" id="race-note">Start delayed to 19:45 – Ambulance attending.</p>' in page
    assert '<time data-field="race_datetime" datetime="2026-12-04T19:45:00+13:00">19:45</time>' in page
    assert _config(page)["notes"] == {
        "statusReason": None, "delayed": True, "delayReason": "Ambulance attending", "drawnDrivers": {},
    }  # fmt: skip


def test_a_delay_is_no_longer_news_once_they_are_racing(client, race):
    at = timezone.now()
    race_status_change(
        race_id=race.pk,
        status="scheduled",
        at=at,
        actor=FEED,
        race_datetime=race.race_datetime + dt.timedelta(minutes=5),
    )
    race_status_change(race_id=race.pk, status="closed", at=at, actor=FEED)

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert '<p class="race-delay" id="race-delay" hidden>Delayed</p>' in page
    assert '<p class="race-note" id="race-note" hidden></p>' in page


def test_a_scratched_runner_is_struck_through_with_scr_and_no_odds(client, race, horses):
    at = timezone.now()
    odds_snapshot_record(race_id=race.pk, odds=[(h, 4.0) for h in horses], source="feed", taken_at=at)
    starter_scratch(race_id=race.pk, horse_id=horses[2], at=at, actor=FEED)  # a late scratching

    page = client.get(f"/races/{race.pk}/").content.decode()

    row = _row(page, horses[2])
    assert row.startswith(f'<tr data-horse-id="{horses[2]}" class="scratched">')
    assert '<span class="visually-hidden"> (scratched)</span>' in row
    assert '<td class="num odds"><abbr class="scr" title="Scratched">SCR</abbr></td>' in row
    assert "SCR" not in _row(page, horses[1])
    assert _config(page)["card"]["starters"][2]["scratched"] is True


def test_a_changed_driver_is_marked_with_the_driver_drawn(client, race, horses):
    drawn = race.starters.get(horse_id=horses[0]).driver.name
    starter_driver_change(
        race_id=race.pk, horse_id=horses[0], driver_name="Blair Orange", at=timezone.now(), actor=FEED
    )

    page = client.get(f"/races/{race.pk}/").content.decode()

    row = _row(page, horses[0])
    assert (
        f'<td class="wide-only">Blair Orange <span class="tag changed" title="Driver changed: drawn with {drawn}">'
        "changed</span></td>"
    ) in row
    # On a phone the driver's column is hidden: the new driver shows under the horse's name.
    assert (
        '<span class="driver-change phone-only">Driver: Blair Orange <span class="tag changed">new</span></span>' in row
    )
    assert "changed" not in _row(page, horses[1])
    assert _config(page)["notes"]["drawnDrivers"] == {str(horses[0]): drawn}


def test_a_driver_changed_back_to_the_one_drawn_is_not_marked(client, race, horses):
    drawn = race.starters.get(horse_id=horses[0]).driver.name
    for name in ("Blair Orange", drawn):
        starter_driver_change(race_id=race.pk, horse_id=horses[0], driver_name=name, at=timezone.now(), actor=FEED)

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert "changed" not in _row(page, horses[0])


def test_interim_placings_with_a_dead_heat_are_marked_interim_and_dh(client, race, horses):
    at = timezone.now()
    starter_scratch(race_id=race.pk, horse_id=horses[3], at=at, actor=FEED)
    placings = {horses[0]: 1, horses[1]: 1, horses[2]: 3}
    race_result_record(race_id=race.pk, placings=placings, declared_at=at, source="feed", official=False)

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("interim", "Interim")
    assert '<th scope="col" class="num placing" id="placing-heading">Interim</th>' in page
    assert '<td class="num placing interim">1st <abbr class="tag dh" title="Dead heat">DH</abbr></td>' in _row(
        page, horses[1]
    )
    assert '<td class="num placing interim">3rd</td>' in _row(page, horses[2])
    assert '<td class="num placing interim"></td>' in _row(page, horses[3])  # scratched: not placed
    assert '<h2 id="result-heading">Interim result</h2>' in page
    assert '<p class="result-note" id="result-note">Not yet official: these placings may change.</p>' in page
    assert '<ol id="result-list" class="result-list interim">' in page
    assert page.count('<abbr class="tag dh" title="Dead heat">DH</abbr></li>') == 2  # both dead-heaters
    assert _config(page)["result"] == {
        "official": False,
        "results": [
            {"horse_id": horses[0], "placing": 1, "finished": True},
            {"horse_id": horses[1], "placing": 1, "finished": True},
            {"horse_id": horses[2], "placing": 3, "finished": True},
        ],
    }
    # The card itself keeps interim placings back, as initial_state does.
    assert all(s["placing"] is None for s in _config(page)["card"]["starters"])


def test_a_protest_says_the_placings_may_change(client, race, horses):
    at = timezone.now()
    race_result_record(race_id=race.pk, placings=_ranked(horses), declared_at=at, source="feed", official=False)
    race_status_change(race_id=race.pk, status="protest", at=at, actor=FEED, reason="Second placed driver protests")

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("protest", "Protest")
    assert (
        '<p class="race-note" id="race-note">Protest – Second placed driver protests. The placings may change.</p>'
        in page
    )
    assert '<p class="result-note" id="result-note">Under protest: these placings may change.</p>' in page
    assert '<td class="num placing interim">1st</td>' in _row(page, horses[0])


def test_an_official_dead_heat_leaves_out_the_scratched_runner(client, race, horses):
    at = timezone.now()
    starter_scratch(race_id=race.pk, horse_id=horses[0], at=at, actor=FEED)
    race_result_record(
        race_id=race.pk, placings={horses[1]: 2, horses[2]: 1, horses[3]: 2}, declared_at=at, source="feed"
    )

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("official", "Official")
    items = re.findall(r"<li.*?</li>", page.split('id="result-list"')[1])
    assert len(items) == 3  # the scratched runner did not run
    assert items[0].startswith('<li class="winner"><span class="place">1</span> <span class="no">#3</span>')
    assert [item.count("DH") for item in items] == [0, 1, 1]
    assert '<td class="num placing">2nd <abbr class="tag dh" title="Dead heat">DH</abbr></td>' in _row(page, horses[3])
    assert "did not finish" not in page


def test_an_abandoned_race_has_no_result_and_says_why(client, race, horses):
    at = timezone.now()
    odds_snapshot_record(race_id=race.pk, odds=[(h, 4.0) for h in horses], source="feed", taken_at=at)
    race_status_change(race_id=race.pk, status="abandoned", at=at, actor=FEED, reason="Track unsafe.")

    page = client.get(f"/races/{race.pk}/").content.decode()

    assert _status(page) == ("abandoned", "Abandoned")
    assert '<p class="race-note" id="race-note">Abandoned – Track unsafe. There is no result.</p>' in page
    assert '<section class="result" id="result" aria-labelledby="result-heading" hidden>' in page
    assert _config(page)["result"] is None


def test_on_a_phone_or_a_tablet_the_race_day_folds_start_distance_and_gait_under_the_name(client, race_day):
    page = client.get("/", {"date": "2026-12-04"}).content.decode()

    assert (
        '<span class="race-facts day-fold"><span class="start">'
        '<time datetime="2026-12-04T18:05:00+13:00">18:05</time> · </span>2600&nbsp;m · Trot<span class="viewers-words live-only"></span></span>'
    ) in page


def test_the_favicon_is_served_where_browsers_look_for_it(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an icon file's header
    assert "max-age=86400" in response["Cache-Control"]


def test_every_page_links_its_icons(client, race_day):
    for path in ("/", "/races/1/"):
        page = client.get(path).content.decode()

        assert '<link rel="icon" href="/static/live/favicon.svg" type="image/svg+xml">' in page
        assert '<link rel="icon" href="/static/live/favicon.ico" sizes="32x32">' in page


def test_a_race_that_does_not_exist_is_a_404_page(client):
    assert client.get("/races/999999/").status_code == 404


def test_the_race_page_reads_in_a_fixed_number_of_queries(client, django_assert_num_queries):
    race = factories.race_create(starter_count=14)
    horse_ids = list(race.starters.values_list("horse_id", flat=True))

    with django_assert_num_queries(4):  # the card (2), its status changes and its driver changes
        assert client.get(f"/races/{race.pk}/").status_code == 200
    race_result_record(
        race_id=race.pk, placings=_ranked(horse_ids), declared_at=timezone.now(), source="feed", official=False
    )
    with django_assert_num_queries(6):  # and the interim placings, which the card keeps back
        assert client.get(f"/races/{race.pk}/").status_code == 200
