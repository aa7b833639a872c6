"""
The messages of ``/ws/races/{race_id}``, read side by side with ../shared/spec/websocket-schema.md.

``WSMessage`` validates what a client sends; ``InitialStateMessage``, ``SubscribedMessage``,
``OddsUpdateMessage``, ``ResultUpdateMessage`` and ``ErrorMessage`` build what the server sends.
This is the only module that knows the wire shape of a message; ``encode`` turns one into the
text frame, once per message however many clients receive it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rest_framework import serializers

from races.selectors import RaceCard, RaceUpdateRow
from races.serializers import StrictCharField, StrictIntegerField, race_card_data, utc_timestamp

# Application error code for a message the server cannot act on (the connection stays open).
ERROR_BAD_MESSAGE = 4400

# Close codes (docs/protocol.md).
CLOSE_RACE_NOT_FOUND = 4004
CLOSE_TOO_SLOW = 4008  # the client did not read its updates: reconnect
CLOSE_SUBSCRIBE_TIMEOUT = 4408  # connected but never subscribed
CLOSE_RACE_RESET = 4409  # the race's updates were numbered afresh: reconnect
CLOSE_TOO_MANY = 4429  # too many messages, or too many connections from one address: back off
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


# --- Client -> server -------------------------------------------------------------------------


class WSMessage(serializers.Serializer):
    """
    An incoming message: ``{"type": "subscribe", "race_id": <int>}`` or ``{"type": "ping"}``.

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
    last_seq = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=2**53,
        error_messages={"invalid": "must be an integer.", "min_value": "must be 0 or more."},
    )
    epoch = StrictCharField(required=False, max_length=64, trim_whitespace=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "subscribe" and "race_id" not in attrs:
            raise serializers.ValidationError({"race_id": "This field is required."})
        return attrs

    def error_text(self) -> str:
        """Return the validation errors as one human-readable line."""
        parts = []
        for field, messages in self.errors.items():
            text = " ".join(str(message) for message in messages)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)


# --- Server -> client -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitialStateMessage:
    type: ClassVar[str] = "initial_state"
    race_id: int
    card: RaceCard

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "race_id": self.race_id, "data": race_card_data(self.card)}


@dataclass(frozen=True, slots=True)
class SubscribedMessage:
    """
    The answer to ``subscribe``. ``epoch`` and ``seq`` say where the race's numbered updates
    stand: the updates that follow continue from ``seq``. ``resumed`` answers a ``last_seq``:
    True when the updates after it follow (replayed, then live), False when they cannot (the
    seq is too old, or from another epoch) and the client must start over from the
    ``initial_state`` it was sent on connecting and the update that follows.
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
                {"horse_id": item.horse_id, "placing": item.placing, "finished": item.finished}
                for item in self.results
            ],
        }


def _seq_field(seq: int | None) -> dict[str, int]:
    return {} if seq is None else {"seq": seq}


def update_from_row(*, race_id: int, row: RaceUpdateRow) -> OddsUpdateMessage | ResultUpdateMessage:
    """Return a logged update as the message that published it, with its seq."""
    if row["kind"] == "result":
        return ResultUpdateMessage(
            race_id=race_id,
            seq=row["seq"],
            timestamp=row["published_at"],
            results=tuple(
                HorseResult(horse_id=item["horse_id"], placing=item["placing"], finished=item["finished"])
                for item in row["data"]
            ),
        )
    return OddsUpdateMessage(
        race_id=race_id,
        seq=row["seq"],
        timestamp=row["published_at"],
        odds=tuple(HorseOdds(horse_id=item["horse_id"], odds=item["odds"]) for item in row["data"]),
    )


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A message the server could not act on; the connection stays open (docs/protocol.md)."""

    type: ClassVar[str] = "error"
    message: str
    code: int = ERROR_BAD_MESSAGE

    # Error texts may quote what the client sent: never at length.
    MAX_CHARS: ClassVar[int] = 300

    def as_dict(self) -> dict[str, Any]:
        text = self.message
        if len(text) > self.MAX_CHARS:
            text = text[: self.MAX_CHARS - 1] + "…"
        # A quoted lone surrogate (valid as a JSON escape) cannot travel as UTF-8: spell it out.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return {"type": self.type, "code": self.code, "message": text}


ServerMessage = (
    InitialStateMessage
    | SubscribedMessage
    | PongMessage
    | OddsUpdateMessage
    | ResultUpdateMessage
    | ErrorMessage
)


def encode(message: ServerMessage) -> str:
    """Return the message as the text of one WebSocket frame."""
    return json.dumps(message.as_dict(), separators=(",", ":"), ensure_ascii=False)
