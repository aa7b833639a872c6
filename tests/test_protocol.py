"""The /ws/races/{race_id} protocol, consumer side, checked message by message against the spec."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test.utils import CaptureQueriesContext

from live.protocol import broadcasting, messages
from live.protocol.broadcasting import publish_odds_update, publish_result_update, race_group_name
from live.protocol.fanout import race_fanout
from live.protocol.messages import HorseOdds, HorseResult
from races.models import Race, Starter
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]

RACE_FIELDS = {
    "id", "meeting_id", "race_number", "distance_m", "start_type", "gait", "weather",
    "track_condition", "race_datetime", "venue", "meeting_date", "status",
}  # fmt: skip
STARTER_FIELDS = {
    "id", "horse_id", "horse_name", "driver_id", "driver_name", "trainer_id", "trainer_name",
    "runner_number", "barrier", "handicap_m", "placing", "did_not_finish", "scratched",
}  # fmt: skip


@pytest.fixture
def race() -> Race:
    return factories.race_create(starter_count=8)


async def connect(path: str, *, subscribe: bool = False) -> tuple[WebsocketCommunicator, dict]:
    """Connect (and, if asked, subscribe as the spec's clients do) and return the communicator
    with the first message it received. A client that only listens is served the same stream."""
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    if subscribe and first["type"] == "initial_state":
        await communicator.send_json_to({"type": "subscribe", "race_id": first["race_id"]})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "subscribed"
    return communicator, first


async def group_members(race_id: int) -> int:
    """Return how many channels the race's channel-layer group has (one per process)."""
    layer = get_channel_layer()
    group = race_group_name(race_id)
    if hasattr(layer, "groups"):  # in-memory layer
        return len(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.zcard(layer._group_key(group))


async def test_connect_sends_initial_state_with_race_and_starters(race):
    communicator, message = await connect(f"/ws/races/{race.pk}")

    assert_valid(message)
    assert message["type"] == "initial_state"
    assert message["race_id"] == race.pk
    data = message["data"]
    assert set(data["race"]) == RACE_FIELDS
    assert data["race"]["id"] == race.pk
    assert data["race"]["meeting_id"] == race.meeting.code
    assert data["race"]["venue"] == "Addington"
    assert data["race"]["meeting_date"] == "2026-12-04"
    assert data["race"]["distance_m"] == 1980
    assert data["starter_count"] == 8 == len(data["starters"])
    assert all(set(starter) == STARTER_FIELDS for starter in data["starters"])
    assert [s["runner_number"] for s in data["starters"]] == list(range(1, 9))
    await communicator.disconnect()


async def test_race_datetime_is_local_time_with_offset_as_in_the_spec(race):
    communicator, message = await connect(f"/ws/races/{race.pk}")

    # 06:30 UTC on 4 December is 19:30 in New Zealand daylight time.
    assert message["data"]["race"]["race_datetime"] == "2026-12-04T19:30:00+13:00"
    await communicator.disconnect()


async def test_starters_come_in_runner_number_order_with_unnumbered_last():
    race = await database_sync_to_async(factories.race_create)(starter_count=0)
    for number in (5, None, 1, 12, 3):
        await database_sync_to_async(factories.starter_create)(race=race, runner_number=number)

    communicator, message = await connect(f"/ws/races/{race.pk}")

    assert [s["runner_number"] for s in message["data"]["starters"]] == [1, 3, 5, 12, None]
    await communicator.disconnect()


async def test_nullable_fields_are_sent_as_null():
    race = await database_sync_to_async(factories.race_create)(
        starter_count=1, start_type=None, gait=None, weather=None, track_condition=None,
        race_datetime=None,
    )  # fmt: skip
    await database_sync_to_async(
        lambda: Starter.objects.filter(race=race).update(driver=None, trainer=None, barrier=None)
    )()

    communicator, message = await connect(f"/ws/races/{race.pk}")

    assert_valid(message)
    race_data, starter = message["data"]["race"], message["data"]["starters"][0]
    assert race_data["start_type"] is race_data["gait"] is race_data["race_datetime"] is None
    assert starter["driver_id"] is starter["driver_name"] is starter["barrier"] is None
    assert starter["trainer_id"] is starter["trainer_name"] is starter["handicap_m"] is None
    await communicator.disconnect()


@pytest.mark.parametrize("starter_count", [1, 14])
async def test_connect_runs_two_queries_whatever_the_number_of_starters(starter_count):
    race = await database_sync_to_async(factories.race_create)(starter_count=starter_count)
    # Consumers reach the database from one thread-sensitive worker; capture queries there.
    queries = await database_sync_to_async(lambda: CaptureQueriesContext(connections["default"]))()
    await database_sync_to_async(queries.__enter__)()
    try:
        communicator, message = await connect(f"/ws/races/{race.pk}", subscribe=False)
    finally:
        await database_sync_to_async(queries.__exit__)(None, None, None)

    assert message["data"]["starter_count"] == starter_count
    assert len(queries.captured_queries) == 2, [q["sql"] for q in queries.captured_queries]
    await communicator.disconnect()


async def test_subscribe_is_confirmed_with_subscribed_saying_where_the_updates_stand(race):
    communicator, _ = await connect(f"/ws/races/{race.pk}", subscribe=False)

    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk})

    assert assert_valid(await communicator.receive_json_from()) == {
        "type": "subscribed",
        "race_id": race.pk,
        "epoch": race.updates_epoch,
        "seq": 0,  # no update yet
    }
    await communicator.disconnect()


async def test_subscribing_to_another_race_is_an_error(race):
    communicator, _ = await connect(f"/ws/races/{race.pk}")

    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk + 1000})

    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["code"] == 4400
    assert f"/ws/races/{race.pk + 1000}" in error["message"]
    await communicator.disconnect()


@pytest.mark.parametrize("path", ["/ws/races/999999", "/ws/races/abc", "/ws/races/-1", "/ws/races/1.5"])
async def test_unknown_or_malformed_race_closes_with_4004_and_a_reason(path):
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()

    # Accepted first, so a real client sees the close code instead of an HTTP 403.
    assert connected
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close"
    assert closing["code"] == 4004
    assert closing["reason"].startswith("Race not found")
    await communicator.wait()


BAD_FRAMES = {
    "invalid JSON": ("{not json", "invalid JSON"),
    "JSON array": ("[1, 2]", "JSON object"),
    "JSON string": ('"subscribe"', "JSON object"),
    "JSON null": ("null", "JSON object"),
    "missing type": ('{"race_id": 1}', "type: This field is required."),
    "unknown type": ('{"type": "unsubscribe", "race_id": 1}', 'unknown message type "unsubscribe"'),
    "type not a string": ('{"type": 7, "race_id": 1}', "unknown message type"),
    "race_id a string": ('{"type": "subscribe", "race_id": "1"}', "race_id: must be an integer."),
    "race_id a float": ('{"type": "subscribe", "race_id": 1.5}', "race_id: must be an integer."),
    "race_id a boolean": ('{"type": "subscribe", "race_id": true}', "race_id: must be an integer."),
    "race_id missing": ('{"type": "subscribe"}', "race_id: This field is required."),
    "deep nesting": ("[" * 30_000 + "]" * 30_000, "invalid JSON"),
    "a 5,000-digit number": ('{"type": "subscribe", "race_id": ' + "9" * 5000 + "}", "invalid JSON"),
}


@pytest.mark.parametrize("frame, expected", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_bad_input_gets_an_error_and_the_connection_stays_open(race, frame, expected):
    communicator, _ = await connect(f"/ws/races/{race.pk}")

    await communicator.send_to(text_data=frame)

    error = await communicator.receive_json_from()
    assert error == {"type": "error", "code": 4400, "message": error["message"]}
    assert expected in error["message"]
    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk})
    assert (await communicator.receive_json_from())["type"] == "subscribed"
    await communicator.disconnect()


async def test_a_binary_frame_gets_an_error_and_the_connection_stays_open(race):
    communicator, _ = await connect(f"/ws/races/{race.pk}")

    await communicator.send_to(bytes_data=b'{"type": "subscribe"}')

    error = await communicator.receive_json_from()
    assert error["code"] == 4400 and "binary" in error["message"]
    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk})
    assert (await communicator.receive_json_from())["type"] == "subscribed"
    await communicator.disconnect()


@pytest.mark.parametrize("size_bytes, closes", [(64 * 1024, False), (64 * 1024 + 1, True)])
async def test_a_frame_over_64_kib_closes_with_1009(race, size_bytes, closes):
    communicator, _ = await connect(f"/ws/races/{race.pk}")
    head, tail = f'{{"type":"subscribe","race_id":{race.pk},"pad":"', '"}'
    frame = head + "x" * (size_bytes - len(head) - len(tail)) + tail
    assert len(frame.encode()) == size_bytes

    await communicator.send_to(text_data=frame)

    reply = await communicator.receive_output(timeout=5)
    if closes:
        assert reply["type"] == "websocket.close" and reply["code"] == 1009
        assert "65536 bytes" in reply["reason"]
    else:
        assert json.loads(reply["text"])["type"] == "subscribed"
    await communicator.disconnect()


async def test_multibyte_text_is_measured_in_utf8_bytes(race):
    communicator, _ = await connect(f"/ws/races/{race.pk}")

    await communicator.send_to(text_data="€" * 30_000)  # 30,000 characters, 90,000 bytes

    reply = await communicator.receive_output(timeout=5)
    assert reply["type"] == "websocket.close" and reply["code"] == 1009
    await communicator.disconnect()


async def test_odds_and_results_reach_every_client_of_the_race_only(race):
    other_race = await database_sync_to_async(factories.race_create)(starter_count=2)
    first, _ = await connect(f"/ws/races/{race.pk}")
    second, _ = await connect(f"/ws/races/{race.pk}")
    bystander, _ = await connect(f"/ws/races/{other_race.pk}")
    horse_ids = await database_sync_to_async(lambda: list(race.starters.values_list("horse_id", flat=True)))()

    await publish_odds_update(
        race_id=race.pk, epoch=race.updates_epoch, seq=1,
        odds=[HorseOdds(horse_id=h, odds=2.5 + i) for i, h in enumerate(horse_ids)],
    )  # fmt: skip
    await publish_result_update(
        race_id=race.pk,
        epoch=race.updates_epoch,
        seq=2,
        results=[HorseResult(horse_id=h, placing=i + 1, finished=True) for i, h in enumerate(horse_ids[:-1])]
        + [HorseResult(horse_id=horse_ids[-1], placing=None, finished=False)],
    )

    for communicator in (first, second):
        odds = assert_valid(await communicator.receive_json_from())
        result = assert_valid(await communicator.receive_json_from())
        assert odds["type"] == "odds_update" and odds["race_id"] == race.pk and odds["seq"] == 1
        assert [o["horse_id"] for o in odds["odds"]] == horse_ids
        assert result["type"] == "result_update" and result["seq"] == 2
        assert result["results"][-1] == {"horse_id": horse_ids[-1], "placing": None, "finished": False}
    assert await bystander.receive_nothing(timeout=0.2)
    for communicator in (first, second, bystander):
        await communicator.disconnect()


async def test_a_broadcast_is_encoded_once_however_many_clients(race, monkeypatch):
    clients = [(await connect(f"/ws/races/{race.pk}"))[0] for _ in range(3)]
    encodes = []
    real_encode = broadcasting.encode
    monkeypatch.setattr(broadcasting, "encode", lambda m: encodes.append(m) or real_encode(m))

    await publish_odds_update(race_id=race.pk, epoch=race.updates_epoch, seq=1, odds=[HorseOdds(horse_id=1, odds=3.0)])

    frames = [await c.receive_from() for c in clients]
    assert len(encodes) == 1
    assert len(set(frames)) == 1
    for communicator in clients:
        await communicator.disconnect()


async def test_timestamps_are_utc_iso_8601_with_microseconds(race):
    communicator, _ = await connect(f"/ws/races/{race.pk}")
    moment = dt.datetime(2026, 12, 4, 19, 35, 22, tzinfo=dt.timezone(dt.timedelta(hours=13)))

    await publish_odds_update(race_id=race.pk, epoch=race.updates_epoch, seq=1, odds=[], timestamp=moment)

    assert (await communicator.receive_json_from())["timestamp"] == "2026-12-04T06:35:22.000000+00:00"
    await communicator.disconnect()


async def test_an_unexpected_error_closes_1011_with_a_reason_and_others_carry_on(race, monkeypatch, caplog):
    bystander, _ = await connect(f"/ws/races/{race.pk}")

    def explode(*, race_id):
        raise RuntimeError("database on fire")

    other_race = await database_sync_to_async(factories.race_create)(starter_count=2)
    monkeypatch.setattr("live.protocol.streams.race_card_get", explode)
    victim = WebsocketCommunicator(application, f"/ws/races/{other_race.pk}")
    with caplog.at_level(logging.ERROR, logger="live.protocol.connection"):
        connected, _ = await victim.connect()
        closing = await victim.receive_output(timeout=5)

    assert connected
    assert closing == {"type": "websocket.close", "code": 1011, "reason": "Internal server error"}
    assert "database on fire" in caplog.text and "Traceback" in caplog.text
    await victim.wait()
    monkeypatch.undo()
    await publish_odds_update(race_id=race.pk, epoch=race.updates_epoch, seq=1, odds=[HorseOdds(horse_id=1, odds=3.0)])
    assert (await bystander.receive_json_from())["type"] == "odds_update"
    await bystander.disconnect()


async def test_a_process_joins_a_race_group_once_and_leaves_it_with_its_last_client(race):
    first, _ = await connect(f"/ws/races/{race.pk}")
    second, _ = await connect(f"/ws/races/{race.pk}")
    assert await group_members(race.pk) == 1  # the process's fan-out, not one per client
    assert len(race_fanout().subscribers[race.pk]) == 2

    await first.disconnect()
    assert await group_members(race.pk) == 1
    await second.disconnect()

    assert await group_members(race.pk) == 0
    assert race.pk not in race_fanout().subscribers


async def test_an_unknown_race_leaves_nothing_behind():
    communicator = WebsocketCommunicator(application, "/ws/races/424242")
    await communicator.connect()
    await communicator.receive_output(timeout=5)
    await communicator.wait()

    assert await group_members(424242) == 0
    assert 424242 not in race_fanout().subscribers


def test_messages_module_builds_every_server_message_type():
    built = {
        messages.SubscribedMessage.type,
        messages.InitialStateMessage.type,
        messages.OddsUpdateMessage.type,
        messages.ResultUpdateMessage.type,
        messages.ErrorMessage.type,
    }
    assert built == {"subscribed", "initial_state", "odds_update", "result_update", "error"}


async def test_an_update_published_while_a_client_connects_arrives_once_right_after_initial_state(race, monkeypatch):
    import live.protocol.streams

    real_read = live.protocol.streams._race_card

    async def read_while_an_update_is_published(race_id):
        await publish_odds_update(
            race_id=race_id, epoch=race.updates_epoch, seq=1, odds=[HorseOdds(horse_id=1, odds=3.0)]
        )
        return await real_read(race_id)

    monkeypatch.setattr(live.protocol.streams, "_race_card", read_while_an_update_is_published)

    communicator, first = await connect(f"/ws/races/{race.pk}")
    assert first["type"] == "initial_state"
    # Held while the race was read, then sent: the client never asked for anything.
    assert assert_valid(await communicator.receive_json_from())["seq"] == 1
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk})

    assert assert_valid(await communicator.receive_json_from())["seq"] == 1  # subscribed: the updates run to 1
    assert await communicator.receive_nothing(timeout=0.2)  # and nothing again
    await communicator.disconnect()


async def test_an_update_both_read_on_connect_and_published_live_is_sent_once(race, monkeypatch):
    import live.protocol.streams
    from races.services import odds_snapshot_record

    horse_id = await database_sync_to_async(lambda: race.starters.first().horse_id)()
    real_read = live.protocol.streams._race_card

    async def read_after_store_before_broadcast(race_id):
        # The snapshot is committed (the read sees it), its broadcast lands in the fan-out meanwhile.
        moment = dt.datetime(2026, 12, 4, 6, 0, 1, tzinfo=dt.UTC)
        await database_sync_to_async(odds_snapshot_record)(
            race_id=race_id, odds=[(horse_id, 4.4)], source="feed", taken_at=moment
        )
        return await real_read(race_id)

    monkeypatch.setattr(live.protocol.streams, "_race_card", read_after_store_before_broadcast)

    communicator, _ = await connect(f"/ws/races/{race.pk}")

    odds = await communicator.receive_json_from()
    assert odds["odds"] == [{"horse_id": horse_id, "odds": 4.4}]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_connection_storm_reads_the_race_once_per_process(race, settings):
    settings.SIMULATION_ENABLED = False  # its reads share the thread whose queries are counted
    first, _ = await connect(f"/ws/races/{race.pk}")
    queries = await database_sync_to_async(lambda: CaptureQueriesContext(connections["default"]))()
    await database_sync_to_async(queries.__enter__)()
    try:
        others = [await connect(f"/ws/races/{race.pk}") for _ in range(5)]
    finally:
        await database_sync_to_async(queries.__exit__)(None, None, None)

    assert len(queries.captured_queries) == 0
    assert all(message["data"]["starter_count"] == 8 for _, message in others)
    for communicator in [first, *(c for c, _ in others)]:
        await communicator.disconnect()


async def test_a_joiner_after_an_update_gets_it_at_once_and_after_a_result_a_fresh_card(race):
    from races.services import odds_snapshot_record, race_result_record

    first, _ = await connect(f"/ws/races/{race.pk}")
    horse_ids = await database_sync_to_async(lambda: list(race.starters.values_list("horse_id", flat=True)))()
    await database_sync_to_async(odds_snapshot_record)(
        race_id=race.pk, odds=[(horse_ids[0], 2.2)], source="feed", taken_at=dt.datetime.now(dt.UTC)
    )
    opened = await first.receive_json_from()
    assert (opened["type"], opened["status"]) == ("race_status", "open")  # the first odds open the market
    update = await first.receive_json_from()
    second, initial = await connect(f"/ws/races/{race.pk}")
    assert initial["data"]["race"]["status"] == "open"  # the card says it: no race_status needed
    assert await second.receive_json_from() == update
    await database_sync_to_async(race_result_record)(
        race_id=race.pk, placings={h: i for i, h in enumerate(horse_ids, 1)},
        declared_at=dt.datetime.now(dt.UTC), source="feed",
    )  # fmt: skip
    assert [(await first.receive_json_from())["type"] for _ in range(3)] == [
        "race_status",
        "race_status",
        "result_update",
    ]

    third, initial = await connect(f"/ws/races/{race.pk}")

    assert initial["data"]["race"]["status"] == "official"
    assert [s["placing"] for s in initial["data"]["starters"]] == list(range(1, 9))
    # The final market, then the result, in seq order.
    assert [(m["type"], m["seq"]) for m in [await third.receive_json_from() for _ in range(2)]] == [
        ("odds_update", 2),
        ("result_update", 5),
    ]
    for communicator in (first, second, third):
        await communicator.disconnect()


async def test_an_update_arriving_while_the_catch_up_goes_out_is_not_lost(race, settings, monkeypatch):
    from live.protocol.consumers import RaceConsumer
    from races.services import odds_snapshot_record

    settings.SIMULATION_ENABLED = False
    race.status = Race.Status.OPEN  # the market is up: the odds below are update 1
    await database_sync_to_async(race.save)()
    horse_id = await database_sync_to_async(lambda: race.starters.first().horse_id)()
    await database_sync_to_async(odds_snapshot_record)(
        race_id=race.pk, odds=[(horse_id, 5.0)], source="feed", taken_at=dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
    )
    first, _ = await connect(f"/ws/races/{race.pk}")  # fills the process's join state
    await first.receive_json_from()
    real_send = RaceConsumer.send
    published = []

    async def send_while_an_update_passes(self, text_data=None, bytes_data=None, close=False):
        await real_send(self, text_data=text_data, bytes_data=bytes_data, close=close)
        if not published and self.cursor.holding and text_data and '"odds_update"' in text_data:
            published.append(
                await publish_odds_update(
                    race_id=race.pk,
                    epoch=race.updates_epoch,
                    seq=2,
                    odds=[HorseOdds(horse_id=horse_id, odds=4.0)],
                    timestamp=dt.datetime(2026, 12, 4, 6, 1, tzinfo=dt.UTC),
                )
            )
            await asyncio.sleep(0.05)  # the fan-out delivers it meanwhile

    monkeypatch.setattr(RaceConsumer, "send", send_while_an_update_passes)
    second, _ = await connect(f"/ws/races/{race.pk}")

    assert (await second.receive_json_from())["odds"][0]["odds"] == 5.0  # the join state's latest
    newer = await second.receive_json_from()
    assert (newer["seq"], newer["odds"][0]["odds"]) == (2, 4.0)  # and the newer one
    await first.disconnect()
    await second.disconnect()


async def test_a_channel_layer_outage_at_connect_closes_1011_saying_so_and_leaks_nothing(race, monkeypatch, caplog):
    class RedisDown(ConnectionError):
        __module__ = "redis.exceptions"

    async def group_add(group, channel):
        raise RedisDown("Connection refused")

    monkeypatch.setattr(race_fanout().layer, "group_add", group_add)
    communicator = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    with caplog.at_level(logging.CRITICAL, logger="live.protocol.connection"):
        await communicator.connect()
        closing = await communicator.receive_output(timeout=5)

    assert closing["code"] == 1011
    assert closing["reason"] == "Internal server error: live updates are unavailable, try again shortly"
    await communicator.wait()
    assert race.pk not in race_fanout().subscribers


async def test_clients_connecting_at_once_share_one_read_of_the_race(race, settings, monkeypatch):
    import live.protocol.streams

    settings.SIMULATION_ENABLED = False
    reads = []
    real_read = live.protocol.streams._race_card

    async def counted_read(race_id):
        reads.append(race_id)
        await asyncio.sleep(0.1)  # still reading while the others connect
        return await real_read(race_id)

    monkeypatch.setattr(live.protocol.streams, "_race_card", counted_read)

    clients = await asyncio.gather(*(connect(f"/ws/races/{race.pk}") for _ in range(20)))

    assert reads == [race.pk]  # a reconnection storm reads the race once per process
    assert all(initial["data"]["starter_count"] == 8 for _, initial in clients)
    for communicator, _ in clients:
        await communicator.disconnect()


@pytest.fixture(autouse=True)
def no_connection_is_left_counted():
    """Every test here ends with its connections' address counts given back."""
    from live.protocol.limits import connections_per_address

    before = dict(connections_per_address.counts)
    yield
    assert dict(connections_per_address.counts) == before


async def test_a_race_id_written_with_a_fraction_is_the_integer_it_is(race):
    # JSON, and JSON Schema, count 7.0 as the integer 7; 7.5 stays an error (BAD_FRAMES).
    communicator, _ = await connect(f"/ws/races/{race.pk}")

    await communicator.send_to(text_data=f'{{"type": "subscribe", "race_id": {race.pk}.0}}')

    assert assert_valid(await communicator.receive_json_from())["type"] == "subscribed"
    await communicator.disconnect()
