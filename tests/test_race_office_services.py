"""The two services the race office's moves add: delaying a start by minutes or to a time, and
making interim placings official as they stand."""

from __future__ import annotations

import datetime as dt

import pytest

from races.models import Race, RaceStatusChange, RaceUpdate, Source
from races.services import (
    Actor,
    Change,
    RaceClosedError,
    TransitionError,
    race_result_make_official,
    race_result_record,
    race_start_delay,
    race_status_change,
)
from tests import factories

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
OFFICE = Actor(Source.ADMIN)


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=3)


def interim(race: Race) -> dict[int, int | None]:
    placings = {
        h: n for n, h in enumerate(race.starters.order_by("runner_number").values_list("horse_id", flat=True), 1)
    }
    race_result_record(race_id=race.pk, placings=placings, declared_at=NOW, source=Source.ADMIN, official=False)
    return placings


def kinds(race: Race) -> list[str]:
    return list(RaceUpdate.objects.filter(race=race).order_by("seq").values_list("kind", flat=True))


def test_a_start_put_back_by_minutes_keeps_the_status_and_says_why(race):
    race_status_change(race_id=race.pk, status=Race.Status.OPEN, at=NOW, actor=OFFICE)

    change = race_start_delay(race_id=race.pk, by=dt.timedelta(minutes=15), reason="ambulance", at=NOW, actor=OFFICE)

    race.refresh_from_db()
    assert change is Change.CHANGED
    assert (race.status, race.race_datetime) == (Race.Status.OPEN, dt.datetime(2026, 12, 4, 6, 45, tzinfo=dt.UTC))
    delay = RaceStatusChange.objects.filter(race=race).latest("seq")
    assert (delay.previous, delay.status, delay.reason, delay.source) == ("open", "open", "ambulance", "admin")


def test_a_start_moved_to_a_time_is_the_same_move(race):
    later = race.race_datetime + dt.timedelta(hours=1)

    assert race_start_delay(race_id=race.pk, race_datetime=later, at=NOW, actor=OFFICE) is Change.CHANGED
    assert race_start_delay(race_id=race.pk, race_datetime=later, at=NOW, actor=OFFICE) is Change.UNCHANGED
    assert Race.objects.get(pk=race.pk).race_datetime == later


@pytest.mark.parametrize(
    "kwargs, refused",
    [
        ({}, "one of them"),
        ({"by": dt.timedelta(minutes=5), "race_datetime": NOW}, "one of them"),
        ({"by": dt.timedelta(days=8)}, "at most 7 days"),
        ({"by": dt.timedelta(days=10**6)}, "at most 7 days"),  # off the calendar
    ],
)
def test_a_delay_names_one_new_start_within_a_week(race, kwargs, refused):
    with pytest.raises(ValueError, match=refused):
        race_start_delay(race_id=race.pk, at=NOW, actor=OFFICE, **kwargs)

    assert kinds(race) == []


def test_a_race_without_a_start_cannot_be_put_back_by_minutes():
    race = factories.race_create(starter_count=2, race_datetime=None)

    with pytest.raises(ValueError, match="no start time"):
        race_start_delay(race_id=race.pk, by=dt.timedelta(minutes=5), at=NOW, actor=OFFICE)


def test_a_closed_race_keeps_its_start(race):
    race_status_change(race_id=race.pk, status=Race.Status.CLOSED, at=NOW, actor=OFFICE)

    with pytest.raises(RaceClosedError):
        race_start_delay(race_id=race.pk, by=dt.timedelta(minutes=5), at=NOW, actor=OFFICE)


@pytest.mark.parametrize("protest", [False, True])
def test_interim_placings_become_official_as_they_stand(race, protest):
    placings = interim(race)
    if protest:
        race_status_change(race_id=race.pk, status=Race.Status.PROTEST, at=NOW, actor=OFFICE)

    change = race_result_make_official(race_id=race.pk, reason="dismissed" * protest, at=NOW, actor=OFFICE)

    assert change is Change.CHANGED
    assert Race.objects.get(pk=race.pk).status == Race.Status.OFFICIAL
    assert kinds(race)[-2:] == ["status", "result"]
    result = RaceUpdate.objects.filter(race=race).latest("seq").data
    assert {row["horse_id"]: row["placing"] for row in result} == placings
    assert race_result_make_official(race_id=race.pk, at=NOW, actor=OFFICE) is Change.UNCHANGED


@pytest.mark.parametrize(
    "path, error, allowed",
    [
        ([], TransitionError, ("open", "closed", "abandoned")),
        (["open"], TransitionError, ("closed", "abandoned")),
        (["closed"], RaceClosedError, None),  # no placings in yet
        (["abandoned"], TransitionError, ()),
    ],
)
def test_only_interim_placings_are_made_official_so(race, path, error, allowed):
    for status in path:
        race_status_change(race_id=race.pk, status=status, at=NOW, actor=OFFICE)

    with pytest.raises(error) as refused:
        race_result_make_official(race_id=race.pk, at=NOW, actor=OFFICE)

    if allowed is not None:
        assert refused.value.allowed == allowed
    assert Race.objects.get(pk=race.pk).status == (path[-1] if path else "scheduled")
