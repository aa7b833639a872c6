"""JSON shapes of the racing domain, shared by the REST API and the live protocol."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from races.models import Meeting, OddsSnapshot, Race
from races.selectors import RaceCard


def utc_timestamp(moment: dt.datetime) -> str:
    """Return an ISO 8601 UTC timestamp with microseconds, e.g. 2026-05-01T07:35:22.123456+00:00."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


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


class StrictIntegerField(serializers.IntegerField):
    """An integer that arrived as a JSON integer: not a string, float or boolean."""

    def to_internal_value(self, data: Any) -> int:
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
    """A decimal that arrived as a JSON number: not a string or boolean."""

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(str(data))


class LocalDateTimeField(serializers.DateTimeField):
    def to_representation(self, value: dt.datetime) -> str | None:
        return local_isoformat(value)


class UtcTimestampField(serializers.DateTimeField):
    def to_representation(self, value: dt.datetime) -> str:
        return utc_timestamp(value)


# --- Reads ------------------------------------------------------------------------------------


class RaceSummarySerializer(serializers.ModelSerializer):
    """A race in a list: the fields of ``initial_state``'s race, plus name, status and field size."""

    meeting_id = serializers.CharField(source="meeting.code")
    race_datetime = LocalDateTimeField()
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
    race_datetime = LocalDateTimeField()

    class Meta:
        model = Race
        fields = ["id", "race_number", "name", "race_datetime", "distance_m", "gait", "start_type", "status"]


class MeetingDetailSerializer(serializers.ModelSerializer):
    races = MeetingRaceSerializer(many=True)

    class Meta:
        model = Meeting
        fields = ["code", "venue", "date", "races"]


class HorseOddsSerializer(serializers.Serializer):
    horse_id = StrictIntegerField(error_messages={"invalid": "must be an integer."})
    odds = StrictDecimalField(
        max_digits=7,
        decimal_places=2,
        min_value=Decimal("1.01"),
        error_messages={
            "invalid": "must be a number (decimal win odds).",
            "min_value": "must be at least 1.01.",
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
    horse_id = StrictIntegerField(error_messages={"invalid": "must be an integer."})
    placing = StrictIntegerField(min_value=1, allow_null=True, error_messages={"invalid": "must be an integer."})
    finished = serializers.BooleanField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["finished"] and attrs.get("placing") is None:
            raise serializers.ValidationError({"placing": "a finisher needs a placing."})
        if not attrs["finished"] and attrs.get("placing") is not None:
            raise serializers.ValidationError({"placing": "must be null for a starter that did not finish."})
        return attrs


class RaceResultSerializer(serializers.Serializer):
    race_id = serializers.IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)
    timestamp = UtcTimestampField(read_only=True)
    results = ResultEntrySerializer(many=True)
