"""
Per-process fan-out of race updates to this process's WebSocket clients.

Stock Channels gives every client its own channel in the race's group, so each update costs a
channel-layer message, a queue put and a dispatch per client (and with Redis, a Redis write per
client). Here each process joins each watched race's group once; the update, encoded once by
live/broadcasting.py, arrives once per process and is written straight to each local client's
socket. Group membership is per race and per process, so clients joining and leaving never touch
the channel layer except for a race's first and last local client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from channels.layers import get_channel_layer

from live.broadcasting import race_group_name
from live.daphne_fixes import send_prepared_frame

logger = logging.getLogger(__name__)

# Channel layers forget group members after their group expiry (a day by default); a process
# watching a race for longer re-joins well before that.
GROUP_REFRESH_S = 10 * 60
# After the channel layer fails (Redis restarting), wait this long before receiving again.
RECEIVE_RETRY_S = 0.5


class Subscriber(Protocol):
    # The client's Daphne protocol, for the prepared-frame fast path; None elsewhere.
    websocket_protocol: Any

    def takes(self, event: dict[str, Any]) -> bool:
        """Return whether to send the event now (False: held until initial_state, or a duplicate)."""

    async def send(self, text_data: str) -> None: ...


class RaceFanout:
    """This process's single member of each watched race's channel-layer group."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.subscribers: dict[int, set[Subscriber]] = {}
        self._joined: set[int] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def subscribe(self, race_id: int, subscriber: Subscriber) -> None:
        """Deliver the race's updates to ``subscriber`` from the moment this returns."""
        await self._start()
        async with self._lock(race_id):
            self.subscribers.setdefault(race_id, set()).add(subscriber)
            if race_id not in self._joined:
                await self.layer.group_add(race_group_name(race_id), self.channel)
                self._joined.add(race_id)

    async def unsubscribe(self, race_id: int, subscriber: Subscriber) -> None:
        async with self._lock(race_id):
            members = self.subscribers.get(race_id)
            if members is None:
                return
            members.discard(subscriber)
            if members:
                return
            del self.subscribers[race_id]
            if race_id in self._joined:
                self._joined.discard(race_id)
                await self.layer.group_discard(race_group_name(race_id), self.channel)

    def _lock(self, race_id: int) -> asyncio.Lock:
        # One lock per race orders its joins and leaves, so a leave's group_discard can never
        # land after the next client's group_add. Locks of races nobody watches are dropped.
        for stale in [r for r, lock in self._locks.items() if not lock.locked() and r not in self.subscribers]:
            del self._locks[stale]
        return self._locks.setdefault(race_id, asyncio.Lock())

    async def _start(self) -> None:
        if self.channel is None:
            self.channel = await self.layer.new_channel(prefix="race-fanout.")
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._receive_forever()), loop.create_task(self._refresh_forever())]

    async def _receive_forever(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Receiving race updates failed; retrying in %s s", RECEIVE_RETRY_S)
                await asyncio.sleep(RECEIVE_RETRY_S)
                continue
            await self._deliver(event)

    async def _deliver(self, event: dict[str, Any]) -> None:
        # In order, one update at a time: every client of a race sees its updates in the order
        # they were published. Under Daphne the frame is built once and the same bytes are
        # written to every socket (websockets.broadcast's approach); elsewhere, the ASGI send.
        text = event["text"]
        prepared = None
        for subscriber in list(self.subscribers.get(event.get("race_id"), ())):
            try:
                if not subscriber.takes(event):
                    continue
                protocol = subscriber.websocket_protocol
                if protocol is not None:
                    if prepared is None:
                        prepared = protocol.factory.prepareMessage(text.encode("utf-8"))
                    send_prepared_frame(protocol, prepared)
                else:
                    await subscriber.send(text_data=text)
            except Exception:
                logger.exception("Delivering race %s update to one client failed", event.get("race_id"))

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_S)
            for race_id in list(self._joined):
                try:
                    await self.layer.group_add(race_group_name(race_id), self.channel)
                except Exception:
                    logger.exception("Refreshing race %s group membership failed", race_id)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for race_id in list(self._joined):
            await self.layer.group_discard(race_group_name(race_id), self.channel)
        self._joined.clear()
        self.subscribers.clear()


_fanouts: WeakKeyDictionary[asyncio.AbstractEventLoop, RaceFanout] = WeakKeyDictionary()


def race_fanout() -> RaceFanout:
    """Return this event loop's fan-out (a server process has one loop, so one fan-out)."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = RaceFanout()
    return fanout


async def race_fanout_close() -> None:
    fanout = _fanouts.pop(asyncio.get_running_loop(), None)
    if fanout is not None:
        await fanout.close()
