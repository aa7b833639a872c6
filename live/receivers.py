"""Broadcast what the racing domain announces (races.events) to the race's WebSocket clients."""

from __future__ import annotations

import datetime as dt
from typing import Any

from asgiref.sync import async_to_sync

from live.broadcasting import publish_odds_update, publish_result_update
from live.messages import HorseOdds, HorseResult


def broadcast_odds(
    *, race_id: int, epoch: str, seq: int, odds: list[tuple[int, float]], taken_at: dt.datetime, **_: Any
) -> None:
    async_to_sync(publish_odds_update)(
        race_id=race_id,
        epoch=epoch,
        seq=seq,
        odds=[HorseOdds(horse_id=horse_id, odds=float(price)) for horse_id, price in odds],
        timestamp=taken_at,
    )


def broadcast_result(
    *, race_id: int, epoch: str, seq: int, results: list[dict[str, Any]], declared_at: dt.datetime, **_: Any
) -> None:
    async_to_sync(publish_result_update)(
        race_id=race_id,
        epoch=epoch,
        seq=seq,
        results=[HorseResult(**item) for item in results],  # in order as logged (races.services)
        timestamp=declared_at,
    )
