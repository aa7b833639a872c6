"""What a connection counts is given back once, however it ends (live/protocol/lease.py)."""

from __future__ import annotations

from live.protocol import presence
from live.protocol.lease import ConnectionLease
from live.protocol.limits import connections_per_address


class Viewers:
    def __init__(self) -> None:
        self.watching: dict[int, int] = {}

    def viewer_joined(self, race_id: int) -> None:
        self.watching[race_id] = self.watching.get(race_id, 0) + 1

    def viewer_left(self, race_id: int) -> None:
        self.watching[race_id] -= 1


class Fanout:
    def __init__(self) -> None:
        self.dropped: list[tuple[int, object]] = []

    def drop(self, race_id: int, subscriber: object) -> None:
        self.dropped.append((race_id, subscriber))


def test_everything_taken_is_given_back_once_however_often_it_is_released(monkeypatch):
    viewers, fanout, subscriber = Viewers(), Fanout(), object()
    monkeypatch.setattr(presence, "_listeners", [lambda: viewers])
    lease = ConnectionLease()

    assert lease.count_address("198.51.100.7", limit=5)
    lease.view(3)
    lease.take_fanout_place(fanout, 3, subscriber)
    for _ in range(3):  # the transport's end, the consumer's disconnect, its cancellation
        lease.release()

    assert "198.51.100.7" not in connections_per_address.counts
    assert viewers.watching == {3: 0}
    assert fanout.dropped == [(3, subscriber)]


def test_what_is_taken_after_the_release_is_given_back_at_once(monkeypatch):
    viewers, fanout, subscriber = Viewers(), Fanout(), object()
    monkeypatch.setattr(presence, "_listeners", [lambda: viewers])
    lease = ConnectionLease()
    lease.release()  # the client went while the connection was still being set up

    assert not lease.count_address("198.51.100.8", limit=5)
    lease.view(4)
    lease.take_fanout_place(fanout, 4, subscriber)

    assert "198.51.100.8" not in connections_per_address.counts
    assert viewers.watching == {}
    assert fanout.dropped == [(4, subscriber)]


def test_an_address_past_its_limit_is_refused():
    first, second = ConnectionLease(), ConnectionLease()

    assert first.count_address("198.51.100.9", limit=1)
    assert not second.count_address("198.51.100.9", limit=1)
    first.release()
    assert second.count_address("198.51.100.9", limit=1)
    second.release()
