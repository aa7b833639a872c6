"""
What one WebSocket connection counts against its process, given back once however the connection
ends: closed by either side, dropped without a close frame, or its consumer killed by Daphne
before its ``disconnect`` ran (docs/protocol.md, "Limits on what a client can make the server
hold").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from live.protocol import presence
from live.protocol.fanout import RaceFanout
from live.protocol.limits import connections_per_address


class ConnectionLease:
    """What one connection counts against the process: its address's connection count, a viewer
    of each race it watches, a place in each race's fan-out. A race's part can be given back on
    its own (a client that unsubscribes); everything is given back once, however the connection
    ends (closed by either side, dropped, or its consumer killed by the server), and anything
    taken after that is given back at once."""

    __slots__ = ("released", "address", "viewing", "fanout_places", "holds")

    def __init__(self) -> None:
        self.released = False
        self.address: str | None = None
        self.viewing: dict[int, tuple[presence.ViewerListener, ...]] = {}
        self.fanout_places: dict[int, tuple[RaceFanout, Any]] = {}
        self.holds: dict[Hashable, Callable[[], None]] = {}  # anything else, by name: how to give it back

    def count_address(self, address: str, *, limit: int) -> bool:
        if self.released or not connections_per_address.acquire(address, limit=limit):
            return False
        self.address = address
        return True

    def view(self, race_id: int) -> None:
        if not self.released and race_id not in self.viewing:
            self.viewing[race_id] = presence.viewer_joined(race_id)

    def take_fanout_place(self, fanout: RaceFanout, race_id: int, subscriber: Any) -> None:
        self.fanout_places[race_id] = (fanout, subscriber)
        if self.released:
            fanout.drop(race_id, subscriber)

    def give_back_race(self, race_id: int) -> None:
        """Give back what the connection holds for one race: it watches it no more."""
        told = self.viewing.pop(race_id, None)
        if told is not None:
            presence.viewer_left(race_id, told)
        place = self.fanout_places.pop(race_id, None)
        if place is not None:
            fanout, subscriber = place
            fanout.drop(race_id, subscriber)

    def hold(self, key: Hashable, give_back: Callable[[], None]) -> None:
        """Hold something more (a meeting's summaries, say), given back by ``give_back()``."""
        if self.released:
            give_back()
        else:
            self.holds[key] = give_back

    def give_back(self, key: Hashable) -> None:
        give_back = self.holds.pop(key, None)
        if give_back is not None:
            give_back()

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.address is not None:
            connections_per_address.release(self.address)
            self.address = None
        for race_id in list(self.viewing.keys() | self.fanout_places.keys()):
            self.give_back_race(race_id)
        for key in list(self.holds):
            self.give_back(key)
