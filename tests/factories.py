"""Small builders of race data for tests that need variations the fixtures do not have."""

from __future__ import annotations

import datetime as dt
import itertools

from races import lifecycle
from races.models import Driver, Horse, Meeting, Race, Source, Starter, Trainer
from races.services import Actor, race_result_record, race_status_change

_sequence = itertools.count(1)


def meeting_create(**fields) -> Meeting:
    number = next(_sequence)
    defaults = {
        "code": f"NZ_20261204_T{number:02d}",
        "venue": "Addington",
        "date": dt.date(2026, 12, 4),
    }
    return Meeting.objects.create(**{**defaults, **fields})


def race_create(*, starter_count: int = 8, meeting: Meeting | None = None, **fields) -> Race:
    """Create a race with ``starter_count`` starters, runner numbers 1..n, barriers 1..n."""
    meeting = meeting or meeting_create()
    defaults = {
        "race_number": meeting.races.count() + 1,
        "name": "Test Mobile Pace",
        "distance_m": 1980,
        "start_type": Race.StartType.MOBILE,
        "gait": Race.Gait.PACE,
        "weather": Race.Weather.FINE,
        "track_condition": Race.TrackCondition.GOOD,
        "race_datetime": dt.datetime(2026, 12, 4, 6, 30, tzinfo=dt.UTC),
    }
    race = Race.objects.create(meeting=meeting, **{**defaults, **fields})
    for runner_number in range(1, starter_count + 1):
        starter_create(race=race, runner_number=runner_number, barrier=runner_number)
    return race


def starter_create(*, race: Race, **fields) -> Starter:
    number = next(_sequence)
    defaults = {
        "horse": Horse.objects.create(name=f"Test Horse {number}"),
        "driver": Driver.objects.create(name=f"Test Driver {number}"),
        "trainer": Trainer.objects.create(name=f"Test Trainer {number}"),
    }
    return Starter.objects.create(race=race, **{**defaults, **fields})


async def arace_create(**fields) -> Race:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(race_create)(**fields)


def race_at_status(status: str, *, starter_count: int = 4, **fields) -> Race:
    """Create a race and take it to ``status`` as the race office would, each move logged (interim,
    protest and official with placings 1..n in runner order)."""
    race = race_create(starter_count=starter_count, **fields)
    office, at = Actor(Source.ADMIN), dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
    if status in lifecycle.HAS_PLACINGS:
        placings = {h: n for n, h in enumerate(race.starters.values_list("horse_id", flat=True), 1)}
        official = status == lifecycle.OFFICIAL
        race_result_record(race_id=race.pk, placings=placings, declared_at=at, source=Source.ADMIN, official=official)
        if status == lifecycle.PROTEST:
            race_status_change(race_id=race.pk, status=status, at=at, actor=office)
    elif status != lifecycle.SCHEDULED:
        for step in lifecycle.path_to(lifecycle.SCHEDULED, status):
            race_status_change(race_id=race.pk, status=step, at=at, actor=office)
    race.refresh_from_db()
    return race
