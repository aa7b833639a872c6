"""A client of a real server written from the protocol: connect, read initial_state, listen."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import websockets

from tests.spec import assert_valid


async def subscribe(ws: Any, race_id: int, *, timeout_s: float = 10, **resume: Any) -> dict:
    """Send subscribe (with ``last_seq``/``epoch`` to resume) and return the ``subscribed``,
    skipping the updates that stream meanwhile."""
    await ws.send(json.dumps({"type": "subscribe", "race_id": race_id, **resume}))
    while True:
        message = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
        if message["type"] == "subscribed":
            return message


@asynccontextmanager
async def race_socket(
    url: str, *, timeout_s: float = 10, last_seq: int | None = None, epoch: str | None = None
) -> AsyncIterator[tuple[Any, dict, dict | None]]:
    """Yield (socket, initial_state, subscribed) for a connection to ``url``. With ``last_seq``
    (and ``epoch``) the connection resumes, as the board does, and ``subscribed`` is the server's
    answer; without, the client only listens and ``subscribed`` is None."""
    if last_seq is not None:
        url += "?" + urlencode({"last_seq": last_seq, **({"epoch": epoch} if epoch else {})})
    async with websockets.connect(url) as ws:
        initial = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
        assert initial["type"] == "initial_state", initial
        subscribed = None
        if last_seq is not None:
            subscribed = assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
            assert subscribed["type"] == "subscribed", subscribed
        yield ws, initial, subscribed


async def next_message(ws: Any, timeout_s: float = 10) -> dict:
    return assert_valid(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
