"""A client of a real server written from the protocol: connect, read initial_state, subscribe."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import websockets

from tests.spec import assert_valid


async def subscribe(ws: Any, race_id: int, *, timeout_s: float = 10, **resume: Any) -> dict:
    """Send subscribe (with ``last_seq``/``epoch`` to resume) and return the ``subscribed``."""
    await ws.send(json.dumps({"type": "subscribe", "race_id": race_id, **resume}))
    subscribed = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
    assert subscribed["type"] == "subscribed", subscribed
    return subscribed


@asynccontextmanager
async def race_socket(url: str, *, timeout_s: float = 10, **resume: Any) -> AsyncIterator[tuple[Any, dict, dict]]:
    """Yield (socket, initial_state, subscribed) for a subscribed connection to ``url``."""
    async with websockets.connect(url) as ws:
        initial = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
        assert initial["type"] == "initial_state", initial
        subscribed = await subscribe(ws, initial["race_id"], timeout_s=timeout_s, **resume)
        yield ws, initial, subscribed


async def next_message(ws: Any, timeout_s: float = 10) -> dict:
    return assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
