"""Broadcast what the racing domain announces (races.events) to the race's WebSocket clients."""

from __future__ import annotations

import datetime as dt
from typing import Any

from asgiref.sync import async_to_sync

from live.protocol.broadcasting import publish_logged_update


def broadcast_update(
    *, race_id: int, epoch: str, seq: int, kind: str, published_at: dt.datetime, data: Any, **_: Any
) -> None:
    """Publish an update the domain logged and announced once its transaction committed."""
    row = {"seq": seq, "kind": kind, "published_at": published_at, "data": data}
    async_to_sync(publish_logged_update)(race_id=race_id, epoch=epoch, row=row)  # type: ignore[arg-type]
