"""Hostile input on /ws/live, generated: every frame gets what the protocol documents (its
answer, an error naming what it is about, or a documented close), every message validates
against the AsyncAPI document, and nothing is left behind (hypothesis)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from live.market.supervisor import simulation_supervisor_shutdown
from live.protocol.audience import audience_close
from live.protocol.fanout import race_fanout, race_fanout_close
from live.protocol.limits import connections_per_address
from live.protocol.summaries import summary_board, summary_board_close
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid
from tests.test_fuzz import json_values

pytestmark = pytest.mark.django_db(transaction=True)

THIS_RACE, THIS_MEETING = "<this race>", "<this meeting>"
ANSWERS = {"initial_state", "subscribed", "unsubscribed", "meeting_state", "pong", "error"}
ERROR_CODES = {4400, 4004, 4429}
DOCUMENTED_CLOSE_CODES = {1009, 4429}

targets = st.fixed_dictionaries(
    {},
    optional={
        "race_id": st.just(THIS_RACE) | st.integers(min_value=-(10**20), max_value=10**20) | json_values,
        "meeting_id": st.just(THIS_MEETING) | st.text(max_size=70) | json_values,
        "date": st.sampled_from(["2026-12-04", "2026-02-30", "", "04/12/2026"]) | st.dates().map(str) | json_values,
        "last_seq": st.integers(min_value=-5, max_value=2**60) | json_values,
        "epoch": st.text(max_size=70) | json_values,
    },
)
messages = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(["subscribe", "unsubscribe", "ping", "follow"]) | json_values,
    targets,
)
frames = st.one_of(
    messages.map(lambda m: ("text", json.dumps(m))),
    st.text(max_size=100).map(lambda t: ("text", t)),
    st.binary(max_size=64).map(lambda b: ("bytes", b)),
)


@pytest.fixture
def race(settings):
    settings.SIMULATION_ENABLED = False
    settings.WEBSOCKET_MAX_SUBSCRIPTIONS = 2  # reached within a few frames
    return factories.race_create(starter_count=3)


async def exchange(race, meeting_code: str, sent: list[tuple[str, str | bytes]]) -> None:
    communicator = WebsocketCommunicator(application, "/ws/live")
    assert (await communicator.connect())[0]
    try:
        for kind, frame in sent:
            if isinstance(frame, str):
                frame = frame.replace(json.dumps(THIS_RACE), str(race.pk)).replace(THIS_MEETING, meeting_code)
            await communicator.send_input({"type": "websocket.receive", kind: frame})
            replies = [await communicator.receive_output(timeout=5)]
            while not await communicator.receive_nothing(timeout=0.05):
                replies.append(await communicator.receive_output(timeout=5))
            for reply in replies:
                if reply["type"] == "websocket.close":
                    assert reply["code"] in DOCUMENTED_CLOSE_CODES and reply["reason"]
                    return
                message = assert_valid(json.loads(reply["text"]))
                assert message["type"] in ANSWERS, message
                if message["type"] == "error":
                    assert message["code"] in ERROR_CODES and 0 < len(message["message"]) <= 300
        await communicator.send_json_to({"type": "ping"})  # still serving after all that
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    finally:
        await communicator.disconnect()


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(sent=st.lists(frames, min_size=1, max_size=5))
def test_any_frames_on_live_get_a_documented_answer_and_leave_nothing_behind(race, sent, caplog):
    meeting_code = race.meeting.code

    async def run() -> None:
        tasks_before = len(asyncio.all_tasks())
        await exchange(race, meeting_code, sent)
        await asyncio.sleep(0)
        assert race.pk not in race_fanout().subscribers
        assert summary_board().watchers == {} and summary_board().taps == {}
        await summary_board_close()
        await race_fanout_close()
        await simulation_supervisor_shutdown()
        await audience_close()
        assert len(asyncio.all_tasks()) <= tasks_before

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())

    assert not connections_per_address.counts
    assert "unexpected error" not in caplog.text, caplog.text
