"""Next to go (/api/next-to-go/): the races still to be run across every meeting, soonest first,
each with its favourite and a countdown, as a tote's screen shows them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from races import lifecycle
from races.models import Meeting, OddsSnapshot, Race, Source
from races.services import Actor, odds_snapshot_record, race_start_delay, race_status_change, starter_scratch
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/next-to-go/"


def race_in(minutes: float, *, meeting: Meeting | None = None, status: str = lifecycle.SCHEDULED, **fields) -> Race:
    """A race starting ``minutes`` from now (before now, if negative), taken to ``status``."""
    starts = timezone.now() + dt.timedelta(minutes=minutes)
    if status == lifecycle.SCHEDULED:
        return factories.race_create(meeting=meeting, race_datetime=starts, **fields)
    return factories.race_at_status(status, meeting=meeting, race_datetime=starts, **fields)


def price(race: Race, *odds: float) -> dict[int, float]:
    """Publish odds for the race's runners in runner order; return them by horse id."""
    horse_ids = race.starters.order_by("runner_number").values_list("horse_id", flat=True)
    prices = dict(zip(horse_ids, odds, strict=False))
    odds_snapshot_record(
        race_id=race.pk, odds=list(prices.items()), source=OddsSnapshot.Source.FEED, taken_at=timezone.now()
    )
    return prices


def next_to_go(client, **query) -> list[dict]:
    response = client.get(URL, query)
    assert response.status_code == 200, response.json()
    return response.json()


def test_races_not_yet_closed_are_listed_soonest_first(client):
    later = race_in(30)
    sooner = race_in(5)
    market_up = race_in(10, status=lifecycle.OPEN)
    for status in (lifecycle.CLOSED, lifecycle.INTERIM, lifecycle.PROTEST, lifecycle.OFFICIAL, lifecycle.ABANDONED):
        race_in(1, status=status)

    rows = next_to_go(client)

    assert [row["id"] for row in rows] == [sooner.pk, market_up.pk, later.pk]
    assert [row["status"] for row in rows] == ["scheduled", "open", "scheduled"]


def test_races_starting_together_are_listed_by_meeting_then_race_number(client):
    starts = timezone.now() + dt.timedelta(minutes=20)
    alexandra_park = factories.meeting_create(code="NZ_20261204_AUK", venue="Alexandra Park")
    addington = factories.meeting_create(code="NZ_20261204_ADD", venue="Addington")
    race_7 = factories.race_create(meeting=alexandra_park, race_number=7, race_datetime=starts)
    race_2 = factories.race_create(meeting=alexandra_park, race_number=2, race_datetime=starts)
    race_5 = factories.race_create(meeting=addington, race_number=5, race_datetime=starts)

    rows = next_to_go(client)

    assert [(row["meeting_id"], row["race_number"]) for row in rows] == [
        ("NZ_20261204_ADD", 5),
        ("NZ_20261204_AUK", 2),
        ("NZ_20261204_AUK", 7),
    ]
    assert [row["id"] for row in rows] == [race_5.pk, race_2.pk, race_7.pk]


def test_an_overdue_race_stays_at_the_top_with_negative_seconds_until_it_closes(client):
    overdue = race_in(-1.5)
    upcoming = race_in(2)

    before = next_to_go(client)
    race_status_change(race_id=overdue.pk, status=lifecycle.CLOSED, at=timezone.now(), actor=Actor(Source.FEED))
    after = next_to_go(client)

    assert [row["id"] for row in before] == [overdue.pk, upcoming.pk]
    assert -92 <= before[0]["seconds_to_start"] <= -90
    assert 118 <= before[1]["seconds_to_start"] <= 120
    assert [row["id"] for row in after] == [upcoming.pk]


def test_a_delayed_race_is_listed_at_its_new_start_time(client):
    delayed = race_in(5)
    on_time = race_in(10)
    race_start_delay(
        race_id=delayed.pk, at=timezone.now(), actor=Actor(Source.FEED), by=dt.timedelta(minutes=15), reason="rain"
    )

    rows = next_to_go(client)

    assert [row["id"] for row in rows] == [on_time.pk, delayed.pk]
    assert 19 * 60 <= rows[1]["seconds_to_start"] <= 20 * 60


def test_a_race_without_a_start_time_is_not_listed(client):
    factories.race_create(race_datetime=None)
    timed = race_in(60)

    assert [row["id"] for row in next_to_go(client)] == [timed.pk]


def test_each_row_is_the_races_summary_with_its_countdown(client):
    meeting = factories.meeting_create(code="NZ_20261204_ADD", venue="Addington")
    race = factories.race_create(
        meeting=meeting,
        race_number=3,
        name="Woodlands Stud Mobile Pace",
        race_datetime=timezone.now().replace(microsecond=0) + dt.timedelta(minutes=10),
    )
    price(race, 4.5, 2.25, 8.0)
    favourite = race.starters.get(runner_number=2)

    (row,) = next_to_go(client)

    assert row == {
        "id": race.pk,
        "meeting_id": "NZ_20261204_ADD",
        "venue": "Addington",
        "race_number": 3,
        "name": "Woodlands Stud Mobile Pace",
        "race_datetime": timezone.localtime(race.race_datetime).isoformat(),
        "status": "open",
        "favourite": {
            "runner_number": 2,
            "horse_id": favourite.horse_id,
            "horse_name": favourite.horse.name,
            "odds": 2.25,
        },
        "winners": None,
        "seconds_to_start": row["seconds_to_start"],
    }
    assert 9 * 60 - 1 <= row["seconds_to_start"] <= 10 * 60


def test_a_race_with_no_market_yet_has_no_favourite(client):
    race_in(5)

    (row,) = next_to_go(client)

    assert row["favourite"] is None and row["winners"] is None


def test_a_scratched_favourite_gives_way_to_the_next_shortest_runner(client):
    race = race_in(5)
    prices = price(race, 1.8, 3.2, 2.6, 9.0)
    scratched = next(horse_id for horse_id, odds in prices.items() if odds == 1.8)
    starter_scratch(race_id=race.pk, horse_id=scratched, at=timezone.now(), actor=Actor(Source.FEED))

    (row,) = next_to_go(client)

    assert row["favourite"]["runner_number"] == 3 and row["favourite"]["odds"] == 2.6


def test_equal_favourites_go_to_the_lower_runner_number(client):
    race = race_in(5)
    price(race, 3.0, 2.5, 2.5)

    (row,) = next_to_go(client)

    assert row["favourite"]["runner_number"] == 2


def test_the_favourite_comes_from_the_latest_odds(client):
    race = race_in(5)
    price(race, 2.0, 5.0)
    price(race, 6.0, 1.9)

    (row,) = next_to_go(client)

    assert row["favourite"]["runner_number"] == 2 and row["favourite"]["odds"] == 1.9


# --- limit ------------------------------------------------------------------------------------


def test_ten_races_are_listed_unless_a_limit_says_otherwise(client):
    races = [race_in(minutes) for minutes in range(1, 13)]

    assert [row["id"] for row in next_to_go(client)] == [race.pk for race in races[:10]]
    assert [row["id"] for row in next_to_go(client, limit=1)] == [races[0].pk]
    assert len(next_to_go(client, limit=12)) == 12
    assert len(next_to_go(client, limit=50)) == 12


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=51", "limit=-1", "limit=x", "limit=", "limit=2.5", "limit=%2B5", "limit=%205",
              "limit=%00", "limit=%D9%A5", "limit=" + "9" * 5000]
)  # fmt: skip
def test_a_limit_that_is_not_a_whole_number_from_1_to_50_is_a_400(client, query):
    response = client.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "limit: must be a whole number from 1 to 50.",
        "errors": {"limit": ["must be a whole number from 1 to 50."]},
    }


def test_a_limit_given_twice_is_a_400(client):
    response = client.get(f"{URL}?limit=5&limit=6")

    assert response.status_code == 400 and response.json()["errors"] == {"limit": ["give it once."]}


def test_next_to_go_needs_no_token(client):
    race_in(5)

    response = client.get(URL)

    assert response.status_code == 200 and "WWW-Authenticate" not in response


# --- Cost -------------------------------------------------------------------------------------


def test_next_to_go_costs_two_queries_however_many_races_and_starters(client, django_assert_num_queries):
    def add_races(count: int) -> None:
        for minutes in range(count):
            race = race_in(minutes + 1, starter_count=12)
            price(race, *(2.0 + i for i in range(12)))

    add_races(2)
    with django_assert_num_queries(2):
        assert len(next_to_go(client)) == 2
    add_races(10)

    with django_assert_num_queries(2):
        assert len(next_to_go(client, limit=12)) == 12
