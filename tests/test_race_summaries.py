"""Race summaries (races.selectors.race_summaries_get): a race at a glance for lists of races and
the live meeting boards: its status, its favourite and, once official, its winners."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from races import lifecycle
from races.models import OddsSnapshot, Race, Source
from races.selectors import race_ids_get, race_summaries_get, races_next_to_go
from races.serializers import race_summary_data
from races.services import Actor, odds_snapshot_record, race_result_record, race_status_change
from tests import factories

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)


def horse_ids_of(race: Race) -> list[int]:
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


def price(race: Race, *odds: float) -> None:
    odds_snapshot_record(
        race_id=race.pk,
        odds=list(zip(horse_ids_of(race), odds, strict=False)),
        source=OddsSnapshot.Source.FEED,
        taken_at=AT,
    )


def declare(race: Race, placings: list[int | None], *, official: bool = True) -> None:
    """Declare placings for the race's runners in runner order (None: did not finish)."""
    race_result_record(
        race_id=race.pk,
        placings=dict(zip(horse_ids_of(race), placings, strict=True)),
        declared_at=AT,
        source=Source.FEED,
        official=official,
    )


def summary_of(race: Race) -> dict:
    (summary,) = race_summaries_get(race_ids=[race.pk])
    return summary


def test_a_dead_heat_for_first_has_both_winners_in_runner_order():
    race = factories.race_create(starter_count=4)
    declare(race, [3, 1, None, 1])
    first, second = race.starters.get(runner_number=2), race.starters.get(runner_number=4)

    assert summary_of(race)["winners"] == [
        {"runner_number": 2, "horse_id": first.horse_id, "horse_name": first.horse.name},
        {"runner_number": 4, "horse_id": second.horse_id, "horse_name": second.horse.name},
    ]


def test_an_official_race_has_its_one_winner():
    race = factories.race_create(starter_count=3)
    declare(race, [2, 3, 1])

    assert [winner["runner_number"] for winner in summary_of(race)["winners"]] == [3]


@pytest.mark.parametrize("status", [lifecycle.INTERIM, lifecycle.PROTEST])
def test_placings_not_yet_official_give_no_winners(status):
    race = factories.race_at_status(status)

    summary = summary_of(race)

    assert summary["status"] == status and summary["winners"] is None


def test_a_closed_race_keeps_its_last_favourite():
    race = factories.race_create(starter_count=3)
    price(race, 5.0, 3.0, 1.7)
    race_status_change(race_id=race.pk, status=lifecycle.CLOSED, at=AT, actor=Actor(Source.FEED))

    assert summary_of(race)["favourite"]["runner_number"] == 3


def test_an_abandoned_race_has_no_favourite():
    race = factories.race_create(starter_count=3)
    price(race, 5.0, 3.0, 1.7)
    race_status_change(race_id=race.pk, status=lifecycle.ABANDONED, at=AT, actor=Actor(Source.FEED))

    summary = summary_of(race)

    assert summary["status"] == "abandoned" and summary["favourite"] is None and summary["winners"] is None


def test_summaries_are_chosen_by_race_meeting_or_date_in_start_order():
    meeting = factories.meeting_create(date=dt.date(2026, 12, 5))
    late = factories.race_create(meeting=meeting, race_datetime=AT + dt.timedelta(days=1, hours=2))
    early = factories.race_create(meeting=meeting, race_datetime=AT + dt.timedelta(days=1))
    elsewhere = factories.race_create(race_datetime=AT)

    def ids(**filters) -> list[int]:
        return [summary["id"] for summary in race_summaries_get(**filters)]

    assert ids(meeting_ids=[meeting.code]) == [early.pk, late.pk]
    assert ids(date=dt.date(2026, 12, 5)) == [early.pk, late.pk]
    assert ids(date=dt.date(2026, 12, 4)) == [elsewhere.pk]
    assert ids(race_ids=[late.pk, elsewhere.pk]) == [elsewhere.pk, late.pk]
    assert ids(race_ids=[]) == []


def test_a_summary_as_json_has_its_start_in_the_venues_time():
    meeting = factories.meeting_create(venue="Addington")
    race = factories.race_create(meeting=meeting, starter_count=2, name="", race_datetime=AT)
    price(race, 2.0, 1.9)

    data = race_summary_data(summary_of(race))

    assert json.loads(json.dumps(data)) == data
    assert data["race_datetime"] == "2026-12-04T19:00:00+13:00"
    assert data["name"] == "" and data["venue"] == "Addington" and data["meeting_id"] == meeting.code
    assert data["favourite"]["odds"] == 1.9


def test_seconds_to_start_are_whole_and_negative_only_once_the_start_has_passed():
    race = factories.race_create(race_datetime=AT)

    def seconds_at(moment: dt.datetime) -> int:
        (row,) = races_next_to_go(now=moment, limit=1)
        return row["seconds_to_start"]

    assert seconds_at(AT - dt.timedelta(seconds=90.5)) == 90
    assert seconds_at(AT) == 0
    assert seconds_at(AT + dt.timedelta(seconds=0.25)) == -1
    assert seconds_at(AT + dt.timedelta(minutes=3)) == -180
    assert race.pk == races_next_to_go(now=AT, limit=1)[0]["id"]


def test_summaries_cost_two_queries_however_many_races_and_starters(django_assert_num_queries):
    meeting = factories.meeting_create()

    def add_races(count: int) -> None:
        for _ in range(count):
            race = factories.race_create(meeting=meeting, starter_count=12, race_datetime=timezone.now())
            price(race, *(2.0 + i for i in range(12)))
            declare(race, [1, 1, *range(3, 13)])

    add_races(2)
    with django_assert_num_queries(2):
        assert len(race_summaries_get(meeting_ids=[meeting.code])) == 2
    add_races(10)

    with django_assert_num_queries(2):
        summaries = race_summaries_get(meeting_ids=[meeting.code])
    assert len(summaries) == 12 and all(len(summary["winners"]) == 2 for summary in summaries)


@pytest.mark.django_db
def test_the_ids_of_a_meetings_or_a_days_races_are_one_query(django_assert_num_queries):
    meeting = factories.meeting_create()
    other_day = factories.meeting_create(date=dt.date(2026, 12, 25))
    races = [factories.race_create(meeting=meeting, starter_count=2) for _ in range(3)]
    factories.race_create(meeting=other_day, starter_count=2)

    with django_assert_num_queries(1):
        by_meeting = race_ids_get(meeting_ids=[meeting.code])
    with django_assert_num_queries(1):
        by_day = race_ids_get(date=dt.date(2026, 12, 4))

    assert by_meeting == by_day == [race.pk for race in races]
    assert sorted(by_meeting) == sorted(summary["id"] for summary in race_summaries_get(meeting_ids=[meeting.code]))
