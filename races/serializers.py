"""JSON shapes of the racing domain, shared by the REST API and the live protocol."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from races import lifecycle
from races.converters import DATABASE_ID_MAX
from races.models import Meeting, OddsSnapshot, Race
from races.selectors import RaceCard, RaceSummary


def utc_timestamp(moment: dt.datetime) -> str:
    """Return an ISO 8601 UTC timestamp with microseconds, e.g. 2026-05-01T07:35:22.123456+00:00."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def local_isoformat(moment: dt.datetime | None) -> str | None:
    """Return a race start in the venue's time zone with its offset, as the spec shows it."""
    if moment is None:
        return None
    return timezone.localtime(moment).isoformat()


def race_card_data(card: RaceCard) -> dict[str, Any]:
    """Return a race card exactly as ``initial_state``'s ``data`` (and ``/api/races/{id}/``)."""
    race = card["race"]
    meeting_date = race["meeting_date"]
    return {
        "race": {
            **race,
            "race_datetime": local_isoformat(race["race_datetime"]),
            "meeting_date": meeting_date.isoformat() if meeting_date else None,
        },
        "starters": card["starters"],
        "starter_count": len(card["starters"]),
    }


def race_summary_data(summary: RaceSummary) -> dict[str, Any]:
    """Return a race summary (races.selectors.race_summaries_get, races_next_to_go) as JSON, its
    start in the venue's time with its offset as everywhere else."""
    return {**summary, "race_datetime": local_isoformat(summary["race_datetime"])}


class StrictIntegerField(serializers.IntegerField):
    """An integer that arrived as a JSON number without a fraction (7, or 7.0, which JSON and JSON
    Schema count as the same integer): not a string, a boolean or 7.5."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and math.isfinite(data) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string that arrived as a JSON string: not a number or boolean turned into one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDecimalField(serializers.DecimalField):
    """A decimal that arrived as a JSON number: not a string or boolean. A binary float's noise
    past the field's decimal places (3.5500000000000003, what 355 * 0.01 is in most languages)
    is taken as the number it stands for; a real third decimal (3.555) is still refused."""

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and self.decimal_places is not None:
            scaled = data * 10**self.decimal_places
            if math.isfinite(scaled) and abs(scaled - round(scaled)) < 1e-6:
                data = round(data, self.decimal_places)
        # The range first: a number far out of it (1e-7, 1e308) is out of range, whatever its digits.
        value = Decimal(str(data))
        if self.min_value is not None and value < self.min_value:
            self.fail("min_value", min_value=self.min_value)
        if self.max_value is not None and value > self.max_value:
            self.fail("max_value", max_value=self.max_value)
        return super().to_internal_value(str(data))


class StrictBooleanField(serializers.BooleanField):
    """A boolean that arrived as JSON true or false: not "yes", "true", 1 or "on"."""

    default_error_messages = {"invalid": "must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class LocalDateTimeField(serializers.DateTimeField):
    def to_representation(self, value: dt.datetime) -> str:
        # DRF never asks a field to represent None (it sends null itself).
        return timezone.localtime(value).isoformat()


class UtcTimestampField(serializers.DateTimeField):
    def to_representation(self, value: dt.datetime) -> str:
        return utc_timestamp(value)


# --- Reads ------------------------------------------------------------------------------------


class RaceSummarySerializer(serializers.ModelSerializer):
    """A race in a list: the fields of ``initial_state``'s race, plus name, status and field size."""

    meeting_id = serializers.CharField(source="meeting.code")
    race_datetime = LocalDateTimeField(allow_null=True)
    venue = serializers.CharField(source="meeting.venue", allow_null=True)
    meeting_date = serializers.DateField(source="meeting.date", allow_null=True)
    starter_count = serializers.IntegerField()

    class Meta:
        model = Race
        fields = [
            "id", "meeting_id", "race_number", "name", "distance_m", "start_type", "gait",
            "weather", "track_condition", "race_datetime", "venue", "meeting_date", "status",
            "starter_count",
        ]  # fmt: skip


class MeetingSerializer(serializers.ModelSerializer):
    race_count = serializers.IntegerField()

    class Meta:
        model = Meeting
        fields = ["code", "venue", "date", "race_count"]


class MeetingRaceSerializer(serializers.ModelSerializer):
    race_datetime = LocalDateTimeField(allow_null=True)

    class Meta:
        model = Race
        fields = ["id", "race_number", "name", "race_datetime", "distance_m", "gait", "start_type", "status"]


class MeetingDetailSerializer(serializers.ModelSerializer):
    races = MeetingRaceSerializer(many=True)

    class Meta:
        model = Meeting
        fields = ["code", "venue", "date", "races"]


# The most runners a harness race has: a feed's list of odds or results is never longer.
MAX_STARTERS = 40


def horse_id_field() -> StrictIntegerField:
    """A horse named by id in a feed's odds or results: the same rule and words in both."""
    return StrictIntegerField(
        min_value=1,
        max_value=DATABASE_ID_MAX,
        error_messages={"invalid": "must be an integer.", "min_value": "must be a horse id (1 or more)."},
    )


class HorseOddsSerializer(serializers.Serializer):
    horse_id = horse_id_field()
    odds = StrictDecimalField(
        max_digits=7,
        decimal_places=2,
        min_value=Decimal("1.01"),
        max_value=Decimal("99999.99"),
        error_messages={
            "invalid": "must be a number (decimal win odds).",
            "min_value": "must be at least 1.01.",
            "max_value": "must be at most 99999.99.",
            "max_digits": "must be at most 99999.99.",
            "max_whole_digits": "must be at most 99999.99.",
            "max_decimal_places": "must have at most 2 decimal places.",
        },
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {"horse_id": instance["horse_id"], "odds": float(instance["odds"])}


class OddsSnapshotSerializer(serializers.ModelSerializer):
    timestamp = UtcTimestampField(source="taken_at")

    class Meta:
        model = OddsSnapshot
        fields = ["timestamp", "source", "odds"]


class ResultEntrySerializer(serializers.Serializer):
    horse_id = horse_id_field()
    # A non-finisher may leave placing out (or send null).
    placing = StrictIntegerField(
        min_value=1,
        max_value=MAX_STARTERS,
        allow_null=True,
        required=False,
        default=None,
        error_messages={"invalid": "must be an integer."},
    )
    finished = StrictBooleanField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["finished"] and attrs.get("placing") is None:
            raise serializers.ValidationError({"placing": "a finisher needs a placing."})
        if not attrs["finished"] and attrs.get("placing") is not None:
            raise serializers.ValidationError({"placing": "must be null for a starter that did not finish."})
        return attrs


class RaceResultSerializer(serializers.Serializer):
    race_id = serializers.IntegerField(read_only=True)
    # interim or protest: the placings as called, not yet official; official: the result.
    status = serializers.ChoiceField(choices=list(lifecycle.HAS_PLACINGS), read_only=True)
    timestamp = UtcTimestampField(read_only=True)
    results = ResultEntrySerializer(many=True, read_only=True)


# --- Shapes the API documents (its views build these bodies as plain dicts) -------------------


class ResultChangeSerializer(RaceResultSerializer):
    """A result post's answer: the result as declared, and what the post changed."""

    change = serializers.ChoiceField(choices=["declared", "corrected", "unchanged"], read_only=True)


class ResultConflictSerializer(RaceResultSerializer):
    """A result post refused because a different result is declared: that result, and why."""

    detail = serializers.CharField(read_only=True)


class RaceCardRaceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    meeting_id = serializers.CharField()
    race_number = serializers.IntegerField()
    distance_m = serializers.IntegerField()
    start_type = serializers.ChoiceField(choices=Race.StartType.choices, allow_null=True)
    gait = serializers.ChoiceField(choices=Race.Gait.choices, allow_null=True)
    weather = serializers.ChoiceField(choices=Race.Weather.choices, allow_null=True)
    track_condition = serializers.ChoiceField(choices=Race.TrackCondition.choices, allow_null=True)
    race_datetime = serializers.DateTimeField(allow_null=True, help_text="local time at the venue, with its offset")
    venue = serializers.CharField(allow_null=True)
    meeting_date = serializers.DateField(allow_null=True)
    status = serializers.ChoiceField(choices=Race.Status.choices)


class RaceCardStarterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    horse_id = serializers.IntegerField()
    horse_name = serializers.CharField(allow_null=True)
    driver_id = serializers.IntegerField(allow_null=True)
    driver_name = serializers.CharField(allow_null=True)
    trainer_id = serializers.IntegerField(allow_null=True)
    trainer_name = serializers.CharField(allow_null=True)
    runner_number = serializers.IntegerField(allow_null=True)
    barrier = serializers.IntegerField(allow_null=True)
    handicap_m = serializers.IntegerField(allow_null=True)
    placing = serializers.IntegerField(allow_null=True, help_text="the official placing: null until official")
    did_not_finish = serializers.BooleanField()
    scratched = serializers.BooleanField()


class RaceCardSerializer(serializers.Serializer):
    """A race card: exactly initial_state's data (tests/test_openapi.py holds them together)."""

    race = RaceCardRaceSerializer()
    starters = RaceCardStarterSerializer(many=True)
    starter_count = serializers.IntegerField()


class RaceFavouriteSerializer(serializers.Serializer):
    runner_number = serializers.IntegerField(allow_null=True)
    horse_id = serializers.IntegerField()
    horse_name = serializers.CharField()
    odds = serializers.FloatField(help_text="decimal win odds, the shortest in the race's latest odds")


class RaceWinnerSerializer(serializers.Serializer):
    runner_number = serializers.IntegerField(allow_null=True)
    horse_id = serializers.IntegerField()
    horse_name = serializers.CharField()


class NextToGoSerializer(serializers.Serializer):
    """A race next to go: its summary (race_summary_data) and the seconds to its start."""

    id = serializers.IntegerField(help_text="the race's id (/api/races/{race_id}/)")
    meeting_id = serializers.CharField(help_text="the meeting's code, e.g. NZ_20261204_ADD")
    venue = serializers.CharField(allow_null=True)
    race_number = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True, help_text="empty for a race with no name")
    race_datetime = serializers.DateTimeField(
        help_text="the start time (after a delay, the new one): local time at the venue, with its offset"
    )
    status = serializers.ChoiceField(
        choices=list(lifecycle.TO_GO), help_text="scheduled or open: next to go lists no race that has closed"
    )
    favourite = RaceFavouriteSerializer(
        allow_null=True,
        help_text="the runner at the shortest price in the race's latest odds (scratched runners left out; the "
        "lowest runner number on a tie); null before its market is up",
    )
    winners = RaceWinnerSerializer(
        many=True,
        allow_null=True,
        help_text="once the result is official, the starters placed first, in runner order (two or more after a "
        "dead heat); null until then, so always null here: a race next to go has no result",
    )
    seconds_to_start = serializers.IntegerField(
        help_text="whole seconds from the server's now to the start time (floored): negative once the race is overdue"
    )
