"""Small builders of race data for tests that need variations the fixtures do not have."""

from __future__ import annotations

import datetime as dt
import itertools

from races.models import Driver, Horse, Meeting, Race, Starter, Trainer

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
        "race_datetime": dt.datetime(2026, 12, 4, 6, 30, tzinfo=dt.timezone.utc),
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
