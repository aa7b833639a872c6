"""
The messages of ``/ws/races/{race_id}`` and ``/ws/live``, read side by side with
../shared/spec/websocket-schema.md.

``WSMessage`` (one race) and ``LiveMessage`` (many) validate what a client sends;
``InitialStateMessage``, ``SubscribedMessage``, ``OddsUpdateMessage``, ``ResultUpdateMessage`` and
the rest build what the server sends.
This is the only module that knows the wire shape of a message; ``encode`` turns one into the
text frame, once per message however many clients receive it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework import serializers

from races.selectors import RaceCard, RaceSummary, RaceUpdateRow
from races.serializers import (
    StrictCharField,
    StrictIntegerField,
    local_isoformat,
    race_card_data,
    race_summary_data,
    utc_timestamp,
)

# Application error codes of the error message (the connection stays open).
ERROR_BAD_MESSAGE = 4400  # a message the server cannot act on
# /ws/live, for one race of the connection's (the error names it): the others carry on.
ERROR_NOT_FOUND = 4004  # no such race, or meeting
ERROR_RACE_RESET = 4409  # numbered afresh: subscribe again for its new state
ERROR_TOO_MANY_SUBSCRIPTIONS = 4429

# Close codes (docs/protocol.md).
CLOSE_RACE_NOT_FOUND = 4004
CLOSE_TOO_SLOW = 4008  # the client did not read its updates: reconnect
CLOSE_NO_SUCH_ENDPOINT = 4404  # a WebSocket path that is not a race's
CLOSE_RACE_RESET = 4409  # the race's updates were numbered afresh: reconnect
CLOSE_TOO_MANY = 4429  # too many messages, or too many connections from one address: back off
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

SLOW_CLIENT_REASON = "Client too slow: updates were not read"


# --- Client -> server -------------------------------------------------------------------------


class ClientMessage(serializers.Serializer):
    """A message a client sends, validated; ``error_text`` says what is wrong in one line."""

    def error_text(self) -> str:
        """Return the validation errors as one human-readable line."""
        parts = []
        for field, messages in self.errors.items():
            text = " ".join(str(message) for message in messages)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)


def _last_seq_field() -> StrictIntegerField:
    return StrictIntegerField(
        required=False,
        min_value=0,
        max_value=2**53,
        error_messages={"invalid": "must be an integer.", "min_value": "must be 0 or more."},
    )


def _epoch_field() -> StrictCharField:
    return StrictCharField(required=False, max_length=64, trim_whitespace=False)


class WSMessage(ClientMessage):
    """
    An incoming message on ``/ws/races/{race_id}``: ``{"type": "subscribe", "race_id": <int>}``
    or ``{"type": "ping"}``.

    A reconnecting client resumes with ``"last_seq"``, the ``seq`` of the last update it
    received, and ``"epoch"``, the race's epoch that seq belongs to (both from earlier messages).
    """

    CLIENT_TYPES: ClassVar[tuple[str, ...]] = ("subscribe", "ping")

    type = serializers.ChoiceField(
        choices=CLIENT_TYPES,
        error_messages={
            "invalid_choice": 'unknown message type "{input}"; expected one of: subscribe, ping.',
        },
    )
    race_id = StrictIntegerField(required=False, error_messages={"invalid": "must be an integer."})
    last_seq = _last_seq_field()
    epoch = _epoch_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "subscribe" and "race_id" not in attrs:
            raise serializers.ValidationError({"race_id": "This field is required."})
        return attrs


class LiveMessage(ClientMessage):
    """
    An incoming message on ``/ws/live``: ``{"type": "subscribe", "race_id": <int>}`` (with
    ``last_seq`` and ``epoch`` to resume, ``summary: true`` for its race_summary too), or with a ``meeting_id`` or a ``date`` instead for its
    races' summaries; ``{"type": "unsubscribe", ...}`` with the same; or ``{"type": "ping"}``.
    """

    TARGETS: ClassVar[tuple[str, ...]] = ("race_id", "meeting_id", "date")

    CLIENT_TYPES: ClassVar[tuple[str, ...]] = ("subscribe", "unsubscribe", "ping")

    type = serializers.ChoiceField(
        choices=CLIENT_TYPES,
        error_messages={
            "invalid_choice": 'unknown message type "{input}"; expected one of: subscribe, unsubscribe, ping.',
        },
    )
    race_id = StrictIntegerField(required=False, error_messages={"invalid": "must be an integer."})
    meeting_id = StrictCharField(required=False, max_length=64, trim_whitespace=False)
    date = serializers.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "must be a date, YYYY-MM-DD.", "datetime": "must be a date, YYYY-MM-DD."},
    )
    last_seq = _last_seq_field()
    epoch = _epoch_field()
    # With a race_id: also this race's race_summary (its viewers, without its meeting's others).
    summary = serializers.BooleanField(required=False)

    def validate_summary(self, value: bool) -> bool:
        if not isinstance(self.initial_data.get("summary"), bool):  # not "true", 1 or "yes"
            raise serializers.ValidationError("must be true or false.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] in ("subscribe", "unsubscribe"):
            named = [target for target in self.TARGETS if target in attrs]
            if not named:
                raise serializers.ValidationError({"race_id": "This field is required (or meeting_id, or date)."})
            if len(named) > 1:
                raise serializers.ValidationError(
                    f"give one of race_id, meeting_id and date, not {' and '.join(named)}."
                )
        return attrs


# --- Server -> client -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitialStateMessage:
    """The race as the client joins it. ``epoch`` (an addition to the spec) names the numbering
    of the race's updates, so that a client that only listens can resume with it too."""

    type: ClassVar[str] = "initial_state"
    race_id: int
    card: RaceCard
    epoch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": self.type, "race_id": self.race_id}
        if self.epoch is not None:
            message["epoch"] = self.epoch
        message["data"] = race_card_data(self.card)
        return message


@dataclass(frozen=True, slots=True)
class SubscribedMessage:
    """
    The answer to ``subscribe``, and to a resume asked for in the URL. ``epoch`` and ``seq`` say
    where the race's numbered updates stand: the updates that follow continue from ``seq``.
    ``resumed`` answers a ``last_seq``: True when the updates the client lacks follow (replayed,
    then live), False when they cannot (the seq is too old, or from another epoch) and the client
    must start over from what this connection sent: its ``initial_state`` and the updates since.
    """

    type: ClassVar[str] = "subscribed"
    race_id: int
    epoch: str | None = None
    seq: int | None = None
    resumed: bool | None = None  # only in answer to a last_seq

    def as_dict(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": self.type, "race_id": self.race_id}
        if self.epoch is not None:
            message["epoch"] = self.epoch
            message["seq"] = self.seq
        if self.resumed is not None:
            message["resumed"] = self.resumed
        return message


@dataclass(frozen=True, slots=True)
class PongMessage:
    """The answer to a client's ``{"type": "ping"}``, for clients that cannot see protocol pings."""

    type: ClassVar[str] = "pong"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True, slots=True)
class UnsubscribedMessage:
    """The answer to ``unsubscribe`` on /ws/live: nothing more of the race (or of the meeting's
    or the day's summaries) follows. ``target`` is what was unsubscribed from, as it was named."""

    type: ClassVar[str] = "unsubscribed"
    target: tuple[str, Any]  # ("race_id", 7), ("meeting_id", "NZ_20261204_ADD"), ("date", date)

    def as_dict(self) -> dict[str, Any]:
        name, value = self.target
        return {"type": self.type, name: value.isoformat() if isinstance(value, dt.date) else value}


def race_summary_with_viewers(summary: RaceSummary, viewers: int) -> dict[str, Any]:
    """Return a race's summary as meeting_state and race_summary carry it, with its viewers: the
    connections watching the race across every server process, counted once a second."""
    return {**race_summary_data(summary), "viewers": viewers}


@dataclass(frozen=True, slots=True)
class MeetingStateMessage:
    """Every race of a meeting (or of a day) at a glance: the answer to a subscribe with a
    ``meeting_id`` or a ``date`` on /ws/live. ``race_summary`` follows as each changes."""

    type: ClassVar[str] = "meeting_state"
    target: tuple[str, Any]  # ("meeting_id", code) or ("date", date)
    races: Sequence[RaceSummary]
    viewers: Mapping[int, int]  # race id -> its viewers

    def as_dict(self) -> dict[str, Any]:
        name, value = self.target
        return {
            "type": self.type,
            name: value.isoformat() if isinstance(value, dt.date) else value,
            "races": [race_summary_with_viewers(summary, self.viewers.get(summary["id"], 0)) for summary in self.races],
        }


@dataclass(frozen=True, slots=True)
class RaceSummaryMessage:
    """A race's summary changed (at most one a second per race; the latest wins)."""

    type: ClassVar[str] = "race_summary"
    summary: RaceSummary
    viewers: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "race_id": self.summary["id"],
            "race": race_summary_with_viewers(self.summary, self.viewers),
        }


@dataclass(frozen=True, slots=True)
class HorseOdds:
    horse_id: int
    odds: float


@dataclass(frozen=True, slots=True)
class OddsUpdateMessage:
    type: ClassVar[str] = "odds_update"
    race_id: int
    timestamp: dt.datetime
    odds: Sequence[HorseOdds]
    seq: int | None = None  # the update's number in its race (an addition to the spec)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "race_id": self.race_id,
            **_seq_field(self.seq),
            "timestamp": utc_timestamp(self.timestamp),
            "odds": [{"horse_id": item.horse_id, "odds": item.odds} for item in self.odds],
        }


@dataclass(frozen=True, slots=True)
class HorseResult:
    horse_id: int
    placing: int | None
    finished: bool


@dataclass(frozen=True, slots=True)
class ResultUpdateMessage:
    """The spec's result_update: the race's official result (again, if it is corrected)."""

    type: ClassVar[str] = "result_update"
    race_id: int
    timestamp: dt.datetime
    results: Sequence[HorseResult]
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "race_id": self.race_id,
            **_seq_field(self.seq),
            "timestamp": utc_timestamp(self.timestamp),
            "results": [
                {"horse_id": item.horse_id, "placing": item.placing, "finished": item.finished} for item in self.results
            ],
        }


@dataclass(frozen=True, slots=True)
class InterimResultMessage(ResultUpdateMessage):
    """The placings as the judges first call them, not yet official (this server's addition):
    the same fields as result_update. A result_update follows when they are official."""

    type: ClassVar[str] = "interim_result"


@dataclass(frozen=True, slots=True)
class RaceStatusMessage:
    """The race moved to a status, or (``status`` equal to ``previous``) its start time changed
    (this server's addition; races.lifecycle has the statuses and moves)."""

    type: ClassVar[str] = "race_status"
    race_id: int
    seq: int
    timestamp: dt.datetime
    status: str
    previous: str
    race_datetime: str | None  # the start time, local to the venue with its offset
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "race_id": self.race_id,
            "seq": self.seq,
            "timestamp": utc_timestamp(self.timestamp),
            "status": self.status,
            "previous": self.previous,
            "race_datetime": self.race_datetime,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StarterUpdateMessage:
    """A change to the race's field (this server's addition): a scratching, a reinstatement or a
    new driver, with the starter as initial_state now shows it."""

    type: ClassVar[str] = "starter_update"
    race_id: int
    seq: int
    timestamp: dt.datetime
    change: str  # scratched, reinstated, driver_changed
    starter: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "race_id": self.race_id,
            "seq": self.seq,
            "timestamp": utc_timestamp(self.timestamp),
            "change": self.change,
            "starter": self.starter,
        }


def _seq_field(seq: int | None) -> dict[str, int]:
    return {} if seq is None else {"seq": seq}


UpdateMessage = (
    OddsUpdateMessage | ResultUpdateMessage | InterimResultMessage | RaceStatusMessage | StarterUpdateMessage
)


def update_from_row(*, race_id: int, row: RaceUpdateRow) -> UpdateMessage:
    """Return a logged update (races.models.RaceUpdate) as the message that publishes it."""
    kind, seq, at, data = row["kind"], row["seq"], row["published_at"], row["data"]
    if kind in ("result", "interim"):
        result = InterimResultMessage if kind == "interim" else ResultUpdateMessage
        return result(
            race_id=race_id,
            seq=seq,
            timestamp=at,
            results=tuple(
                HorseResult(horse_id=item["horse_id"], placing=item["placing"], finished=item["finished"])
                for item in data
            ),
        )
    if kind == "status":
        starts_at = dt.datetime.fromisoformat(data["race_datetime"]) if data["race_datetime"] else None
        return RaceStatusMessage(
            race_id=race_id,
            seq=seq,
            timestamp=at,
            status=data["status"],
            previous=data["previous"],
            race_datetime=local_isoformat(starts_at),
            reason=data["reason"],
        )
    if kind == "starter":
        return StarterUpdateMessage(
            race_id=race_id, seq=seq, timestamp=at, change=data["change"], starter=data["starter"]
        )
    return OddsUpdateMessage(
        race_id=race_id,
        seq=seq,
        timestamp=at,
        odds=tuple(HorseOdds(horse_id=item["horse_id"], odds=item["odds"]) for item in data),
    )


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A message the server could not act on; the connection stays open (docs/protocol.md)."""

    type: ClassVar[str] = "error"
    message: str
    code: int = ERROR_BAD_MESSAGE
    # On /ws/live, what it is about, if one thing: ("race_id", 7) or ("meeting_id", "NZ_…").
    about: tuple[str, Any] | None = None

    # Error texts may quote what the client sent: never at length.
    MAX_CHARS: ClassVar[int] = 300

    def as_dict(self) -> dict[str, Any]:
        text = self.message
        if len(text) > self.MAX_CHARS:
            text = text[: self.MAX_CHARS - 1] + "…"
        # A quoted lone surrogate (valid as a JSON escape) cannot travel as UTF-8: spell it out.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        message: dict[str, Any] = {"type": self.type, "code": self.code, "message": text}
        if self.about is not None:
            name, value = self.about
            message[name] = value.isoformat() if isinstance(value, dt.date) else value
        return message


ServerMessage = (
    InitialStateMessage
    | SubscribedMessage
    | UnsubscribedMessage
    | MeetingStateMessage
    | RaceSummaryMessage
    | PongMessage
    | UpdateMessage
    | ErrorMessage
)


def encode(message: ServerMessage) -> str:
    """Return the message as the text of one WebSocket frame."""
    return json.dumps(message.as_dict(), separators=(",", ":"), ensure_ascii=False)
