"""A meeting's race card as the import reads it: one row per starter, in race and runner order."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import tablib
from django.conf import settings

from races.models import Meeting, Starter
from races.racecard.columns import NAMES


def racecard_dataset(*, meeting_codes: Sequence[str]) -> tablib.Dataset:
    """Return the meetings' race cards as a Dataset in the import's format (scratched starters left
    out: the card is the field as it will run). Raise Meeting.DoesNotExist for an unknown code."""
    known = set(Meeting.objects.filter(code__in=meeting_codes).values_list("code", flat=True))
    if missing := [code for code in meeting_codes if code not in known]:
        raise Meeting.DoesNotExist(f"no meeting {', '.join(missing)}")
    tz = ZoneInfo(settings.TIME_ZONE)
    starters = (
        Starter.objects.filter(race__meeting__code__in=meeting_codes, scratched=False)
        .select_related("race__meeting", "horse", "driver", "trainer")
        .order_by("race__meeting__date", "race__meeting__code", "race__race_number", "runner_number", "pk")
    )
    dataset = tablib.Dataset(headers=list(NAMES))
    for starter in starters:
        race, meeting = starter.race, starter.race.meeting
        start = race.race_datetime.astimezone(tz).isoformat() if race.race_datetime else None
        dataset.append(
            [
                meeting.code, meeting.date.isoformat() if meeting.date else None, meeting.venue,
                race.race_number, race.name, race.distance_m, race.gait, race.start_type, start,
                race.track_condition, race.weather,
                starter.runner_number, starter.barrier, starter.handicap_m,
                starter.horse.name, starter.driver.name if starter.driver else None,
                starter.trainer.name if starter.trainer else None,
            ]
        )  # fmt: skip
    return dataset
