"""The per-process fan-out: one frame to every local client in order, slow readers closed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from live.fanout import RaceFanout


class FakeTransport:
    def __init__(self, queued: int = 0) -> None:
        self.TLS = False
        self.disconnecting = False
        self.dataBuffer = b"q" * queued
        self.offset = 0
        self._tempDataBuffer: list[bytes] = []
        self._tempDataLen = 0
        self.socket = SimpleNamespace(send=self.take)
        self.sent: list[bytes] = []

    def take(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def write(self, data: bytes) -> None:
        self._tempDataBuffer.append(data)
        self._tempDataLen += len(data)


class FakeClient:
    """A consumer as the fan-out sees it, over a Daphne-like protocol."""

    def __init__(self, *, queued: int = 0) -> None:
        self.transport = FakeTransport(queued)
        self.closed_with: tuple[int, str] | None = None
        self.websocket_protocol = SimpleNamespace(
            STATE_OPEN=3,
            state=3,
            transport=self.transport,
            factory=SimpleNamespace(prepareMessage=lambda payload: SimpleNamespace(payloadHybi=b"frame:" + payload)),
            sendPreparedMessage=lambda prepared: self.transport.write(prepared.payloadHybi),
            sendClose=self.close,
        )
        self.taken: list[str] = []

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.websocket_protocol.state = 4

    def takes(self, event) -> bool:
        self.taken.append(event["timestamp"])
        return True

    async def send(self, text_data: str) -> None:  # pragma: no cover - Daphne path used here
        raise AssertionError("the prepared-frame path should be used")


def event(n: int) -> dict:
    return {"type": "odds.update", "race_id": 7, "text": f"update {n}", "timestamp": f"2026-12-04T06:00:0{n}"}


@pytest.fixture
def fanout() -> RaceFanout:
    return RaceFanout()


async def test_every_local_client_gets_the_same_frame_in_order(fanout):
    clients = [FakeClient() for _ in range(3)]
    fanout.subscribers[7] = set(clients)

    for n in range(3):
        await fanout._deliver(event(n))

    for client in clients:
        assert client.transport.sent == [b"frame:update 0", b"frame:update 1", b"frame:update 2"]


async def test_a_client_that_stopped_reading_is_closed_with_4008_and_skipped(fanout, settings):
    settings.WEBSOCKET_MAX_BUFFERED_BYTES = 1024
    reader, stalled = FakeClient(), FakeClient(queued=4096)
    fanout.subscribers[7] = {reader, stalled}

    await fanout._deliver(event(1))
    await fanout._deliver(event(2))

    assert stalled.closed_with == (4008, "Client too slow: updates were not read")
    assert stalled.transport._tempDataLen == 0  # nothing more was queued for it
    assert reader.transport.sent == [b"frame:update 1", b"frame:update 2"]


async def test_a_client_whose_send_fails_does_not_stop_the_others(fanout):
    broken, healthy = FakeClient(), FakeClient()
    broken.websocket_protocol.factory = None  # preparing the frame for it raises
    fanout.subscribers[7] = [broken, healthy]

    await fanout._deliver(event(1))

    assert healthy.transport.sent == [b"frame:update 1"]
