"""
The one path by which updates reach a race's clients: build the message, encode it once, and
send it to the race's channel-layer group. Simulator, feed API, admin and management commands
all publish through here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable

from channels.layers import BaseChannelLayer, get_channel_layer
from django.utils import timezone

from live.protocol.messages import (
    HorseOdds,
    HorseResult,
    OddsUpdateMessage,
    ResultUpdateMessage,
    UpdateMessage,
    encode,
    update_from_row,
)
from races.selectors import RaceUpdateRow

# Group event types, as the fan-out (live/protocol/fanout.py) sees them: one per message type.
EVENT_ODDS_UPDATE = "odds.update"
GROUP_SEND_RETRY_S = 0.2


def race_group_name(race_id: int) -> str:
    """Return the channel-layer group that every client of the race belongs to."""
    return f"race.{race_id}"


async def publish_odds_update(
    *,
    race_id: int,
    epoch: str,
    seq: int,
    odds: Iterable[HorseOdds],
    timestamp: dt.datetime | None = None,
    channel_layer: BaseChannelLayer | None = None,
) -> OddsUpdateMessage:
    """Send an ``odds_update`` to every client of the race and return it. ``seq`` is the number
    the update was logged under (races.services): clients resume by it."""
    message = OddsUpdateMessage(race_id=race_id, seq=seq, timestamp=timestamp or timezone.now(), odds=tuple(odds))
    await _group_send(message, epoch, channel_layer)
    return message


async def publish_result_update(
    *,
    race_id: int,
    epoch: str,
    seq: int,
    results: Iterable[HorseResult],
    timestamp: dt.datetime | None = None,
    channel_layer: BaseChannelLayer | None = None,
) -> ResultUpdateMessage:
    """Send a ``result_update`` to every client of the race and return it."""
    message = ResultUpdateMessage(
        race_id=race_id, seq=seq, timestamp=timestamp or timezone.now(), results=tuple(results)
    )
    await _group_send(message, epoch, channel_layer)
    return message


async def publish_logged_update(
    *, race_id: int, epoch: str, row: RaceUpdateRow, channel_layer: BaseChannelLayer | None = None
) -> UpdateMessage:
    """Send a logged update of any kind (odds, status, starter, interim or official result) to
    every client of the race, as the message that publishes it; return the message."""
    message = update_from_row(race_id=race_id, row=row)
    await _group_send(message, epoch, channel_layer)
    return message


def update_event(message: UpdateMessage, *, epoch: str) -> dict:
    """Return the group event that carries an update to the fan-out (live/protocol/fanout.py)."""
    # The frame is encoded here, once; each client's handler only writes the text out. The seq
    # rides along so that the fan-out can put updates in order, fill a gap from the log, and
    # skip what a client was already sent from the database.
    event_type = message.type.replace("_", ".") if message.type != "odds_update" else EVENT_ODDS_UPDATE
    return {"type": event_type, "race_id": message.race_id, "epoch": epoch, "seq": message.seq, "text": encode(message)}


async def _group_send(message: UpdateMessage, epoch: str, channel_layer: BaseChannelLayer | None) -> None:
    race_id = message.race_id
    layer = channel_layer or get_channel_layer()
    event = update_event(message, epoch=epoch)
    try:
        await layer.group_send(race_group_name(race_id), event)
    except Exception:
        # Once more, after a moment: a Redis that just restarted fails the first command on
        # each pooled connection, and the next one reconnects.
        await asyncio.sleep(GROUP_SEND_RETRY_S)
        await layer.group_send(race_group_name(race_id), event)
