"""Hostile input, generated: every frame gets the documented error or close, nothing escapes,
nothing leaks (hypothesis)."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote, urlencode

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from live.market.supervisor import simulation_supervisor_shutdown
from live.protocol.audience import audience_close
from live.protocol.fanout import race_fanout, race_fanout_close
from live.protocol.limits import connections_per_address
from racing.asgi import application
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENTED_CLOSE_CODES = {1009, 4429}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["subscribe", "ping", "unsubscribe", "", "SUBSCRIBE"]) | json_values,
        "race_id": st.integers(min_value=-(10**30), max_value=10**30) | json_values,
        "last_seq": json_values,
    },
)
# Resumes of this very race (its id filled in when sent), with any last_seq and epoch at all.
resumes = st.fixed_dictionaries(
    {"type": st.just("subscribe"), "race_id": st.just(THIS_RACE := "<this race>")},
    optional={
        "last_seq": st.integers(min_value=-5, max_value=2**64) | json_values,
        "epoch": st.text(max_size=70) | json_values,
    },
)
text_frames = st.one_of(
    messages.map(json.dumps),
    resumes.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),  # every plane of Unicode
    # JSON escapes of lone surrogates: valid JSON that decodes to text no UTF-8 can carry.
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3).map(lambda t: json.dumps({"type": t})),
    st.integers(min_value=1, max_value=40_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=6_000).map(
        lambda digits: '{"type": "subscribe", "race_id": ' + "7" * digits + "}"
    ),
    st.integers(min_value=60_000, max_value=1024 * 1024).map(lambda size: "x" * size),  # up to 1 MiB
)
frames = st.one_of(text_frames.map(lambda t: ("text", t)), st.binary(max_size=2048).map(lambda b: ("bytes", b)))


async def exchange(race_id: int, sent: list[tuple[str, object]], query: str = "") -> list[dict]:
    """Connect (with ``query`` after the path), send the frames on the one connection; return
    what came back, checking each as it comes."""
    communicator = WebsocketCommunicator(application, f"/ws/races/{race_id}" + (f"?{query}" if query else ""))
    connected, _ = await communicator.connect()
    assert connected
    assert json.loads((await communicator.receive_output(timeout=5))["text"])["type"] == "initial_state"
    # A resume asked for in the URL is answered (subscribed), or refused as an error; either way
    # the race is served (it has no updates: nothing else follows).
    while not await communicator.receive_nothing(timeout=0.05):
        opening = json.loads((await communicator.receive_output(timeout=5))["text"])
        assert opening["type"] in {"subscribed", "error"}, opening
        if opening["type"] == "error":
            assert opening["code"] == 4400 and 0 < len(opening["message"]) <= 300
    replies = []
    closed = False
    try:
        for kind, frame in sent:
            if kind == "text":
                frame = frame.replace(json.dumps(THIS_RACE), str(race_id))
            await communicator.send_input({"type": "websocket.receive", kind: frame})
            reply = await communicator.receive_output(timeout=5)
            replies.append(reply)
            if reply["type"] == "websocket.close":
                assert reply["code"] in DOCUMENTED_CLOSE_CODES and reply["reason"]
                closed = True
                break
            reply["text"].encode("utf-8")  # a real server must be able to put it on the wire
            message = json.loads(reply["text"])
            assert message["type"] in {"error", "subscribed", "pong"}, message
            if message["type"] == "error":
                assert message["code"] == 4400 and 0 < len(message["message"]) <= 300
        if not closed:  # still serving after all that
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from() == {"type": "pong"}
    finally:
        await communicator.disconnect()
    return replies


@pytest.fixture
def race_id(settings) -> int:
    settings.SIMULATION_ENABLED = False
    return factories.race_create(starter_count=3).pk


# Query strings as a client could put them in the URL: resumes of any shape, and junk.
queries = st.one_of(
    st.just(""),
    st.fixed_dictionaries(
        {}, optional={"last_seq": st.integers(min_value=-5, max_value=2**70).map(str) | st.text(max_size=12),
                      "epoch": st.text(max_size=70), "other": st.text(max_size=5)},
    ).map(urlencode),
    st.text(max_size=40).map(lambda text: quote(text, safe="=&")),
)  # fmt: skip


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(sent=st.lists(frames, min_size=1, max_size=4), query=queries)
def test_any_frames_get_an_error_or_a_documented_close_and_leave_nothing_behind(race_id, sent, query, caplog):
    async def run() -> None:
        tasks_before = len(asyncio.all_tasks())
        await exchange(race_id, sent, query)
        await asyncio.sleep(0)
        assert race_id not in race_fanout().subscribers
        await race_fanout_close()
        await simulation_supervisor_shutdown()
        await audience_close()  # the viewer counts' task ends with the process's last viewer
        assert len(asyncio.all_tasks()) <= tasks_before

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())

    assert not connections_per_address.counts
    assert "unexpected error" not in caplog.text, caplog.text


def test_a_flood_is_cut_off_with_4429(race_id):
    replies = asyncio.run(exchange(race_id, [("text", '{"type": "ping"}')] * 40))

    assert replies[-1]["type"] == "websocket.close" and replies[-1]["code"] == 4429
