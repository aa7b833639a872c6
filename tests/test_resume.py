"""Numbered updates and gap-free resume: subscribe with last_seq after a reconnect."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

import live.consumers
from racing.asgi import application
from races.models import Race
from races.services import odds_snapshot_record, race_reset, race_result_record
from tests import factories
from tests.spec import assert_valid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def race(settings) -> Race:
    settings.SIMULATION_ENABLED = False  # the test publishes every update itself
    return factories.race_create(starter_count=4)


def horse_ids(race: Race) -> list[int]:
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


@database_sync_to_async
def record_odds(race: Race, n: int) -> None:
    """Store and publish the race's next odds; the n-th has the first horse at 2 + n."""
    horses = horse_ids(race)
    odds_snapshot_record(
        race_id=race.pk,
        odds=[(horse, 2.0 + n + i) for i, horse in enumerate(horses)],
        source="feed",
        taken_at=START + dt.timedelta(seconds=n),
    )


@database_sync_to_async
def record_result(race: Race) -> None:
    horses = horse_ids(race)
    race_result_record(
        race_id=race.pk, placings={h: i for i, h in enumerate(horses, 1)}, declared_at=START + dt.timedelta(minutes=5), source="feed"
    )


@database_sync_to_async
def epoch_of(race: Race) -> str:
    return Race.objects.get(pk=race.pk).updates_epoch


async def open_socket(race: Race) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    assert (await communicator.connect())[0]
    initial = assert_valid(await communicator.receive_json_from(timeout=5))
    assert initial["type"] == "initial_state"
    return communicator, initial


async def subscribe(communicator: WebsocketCommunicator, race: Race, **resume) -> dict:
    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk, **resume})
    subscribed = assert_valid(await communicator.receive_json_from(timeout=5))
    assert subscribed["type"] == "subscribed"
    return subscribed


async def receive(communicator: WebsocketCommunicator, count: int) -> list[dict]:
    return [assert_valid(await communicator.receive_json_from(timeout=5)) for _ in range(count)]


def seqs(messages: list[dict]) -> list[tuple[str, int]]:
    return [(m["type"], m["seq"]) for m in messages]


async def test_updates_are_numbered_from_1_and_subscribed_says_the_epoch_and_newest_seq(race):
    client, _ = await open_socket(race)
    subscribed = await subscribe(client, race)
    assert (subscribed["epoch"], subscribed["seq"]) == (await epoch_of(race), 0)

    await record_odds(race, 1)
    await record_odds(race, 2)
    await record_result(race)

    assert seqs(await receive(client, 3)) == [("odds_update", 1), ("odds_update", 2), ("result_update", 3)]
    await client.disconnect()


async def test_a_reconnecting_client_gets_every_missed_update_in_order_then_live_ones(race):
    client, _ = await open_socket(race)
    await subscribe(client, race)
    await record_odds(race, 1)
    last = (await receive(client, 1))[0]
    epoch = (await subscribe(client, race))["epoch"]
    await client.disconnect()  # the phone changes cell ...
    for n in (2, 3, 4):
        await record_odds(race, n)

    client, _ = await open_socket(race)
    subscribed = await subscribe(client, race, last_seq=last["seq"], epoch=epoch)

    assert subscribed["resumed"] is True and subscribed["seq"] == 4
    missed = await receive(client, 3)
    assert seqs(missed) == [("odds_update", 2), ("odds_update", 3), ("odds_update", 4)]
    assert [m["odds"][0]["odds"] for m in missed] == [4.0, 5.0, 6.0]
    await record_result(race)
    assert seqs(await receive(client, 1)) == [("result_update", 5)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_client_that_missed_nothing_resumes_with_nothing_replayed(race):
    await record_odds(race, 1)
    client, _ = await open_socket(race)

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True and subscribed["seq"] == 1
    assert await client.receive_nothing(timeout=0.2)  # not even the latest odds: it has them
    await record_odds(race, 2)
    assert seqs(await receive(client, 1)) == [("odds_update", 2)]
    await client.disconnect()


async def test_the_missed_result_is_replayed_after_the_missed_odds(race):
    for n in (1, 2):
        await record_odds(race, n)
    await record_result(race)
    client, _ = await open_socket(race)

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True
    assert seqs(await receive(client, 2)) == [("odds_update", 2), ("result_update", 3)]
    await client.disconnect()


async def test_too_far_behind_it_is_sent_the_race_afresh_and_told_it_did_not_resume(race, settings):
    settings.WEBSOCKET_RESUME_MAX_UPDATES = 2
    for n in (1, 2, 3, 4):
        await record_odds(race, n)
    client, _ = await open_socket(race)

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is False and subscribed["seq"] == 4
    initial, latest = await receive(client, 2)
    assert initial["type"] == "initial_state"
    assert seqs([latest]) == [("odds_update", 4)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_seq_from_before_the_race_was_reset_does_not_resume(race):
    for n in (1, 2):
        await record_odds(race, n)
    old_epoch = await epoch_of(race)
    await database_sync_to_async(race_reset)(race_id=race.pk)
    await record_odds(race, 1)
    await record_odds(race, 2)  # the same numbers again, in a new epoch
    client, _ = await open_socket(race)

    subscribed = await subscribe(client, race, last_seq=1, epoch=old_epoch)

    assert subscribed["resumed"] is False and subscribed["epoch"] != old_epoch
    assert [m["type"] for m in await receive(client, 2)] == ["initial_state", "odds_update"]
    await client.disconnect()


async def test_a_seq_the_race_has_not_reached_does_not_resume_even_without_an_epoch(race):
    await record_odds(race, 1)
    client, _ = await open_socket(race)

    subscribed = await subscribe(client, race, last_seq=7)

    assert subscribed["resumed"] is False
    assert [m["type"] for m in await receive(client, 2)] == ["initial_state", "odds_update"]
    await client.disconnect()


async def test_an_update_published_during_the_replay_follows_it_once_in_order(race, monkeypatch):
    for n in (1, 2, 3):
        await record_odds(race, n)
    real_read = live.consumers._race_updates_after

    async def read_while_an_update_is_published(race_id, after_seq, limit):
        rows = await real_read(race_id, after_seq, limit)
        await record_odds(race, 4)  # stored and broadcast while the replay is being read
        return rows

    monkeypatch.setattr(live.consumers, "_race_updates_after", read_while_an_update_is_published)
    client, _ = await open_socket(race)

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True
    assert seqs(await receive(client, 3)) == [("odds_update", 2), ("odds_update", 3), ("odds_update", 4)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_connected_client_can_ask_again_for_what_it_missed(race):
    client, _ = await open_socket(race)
    await subscribe(client, race)
    for n in (1, 2, 3):
        await record_odds(race, n)
    await receive(client, 3)

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True
    assert seqs(await receive(client, 2)) == [("odds_update", 2), ("odds_update", 3)]
    await client.disconnect()


async def test_clients_of_a_race_that_is_reset_are_closed_with_4409_and_resume_afresh(race):
    client, _ = await open_socket(race)
    await subscribe(client, race)
    await record_odds(race, 1)
    await receive(client, 1)

    await database_sync_to_async(race_reset)(race_id=race.pk)
    await record_odds(race, 1)

    closing = await client.receive_output(timeout=5)
    assert closing["type"] == "websocket.close" and closing["code"] == 4409 and "reset" in closing["reason"]
    await client.disconnect()


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("last_seq", -1, "last_seq: must be 0 or more."),
        ("last_seq", "3", "last_seq: must be an integer."),
        ("last_seq", 2.5, "last_seq: must be an integer."),
        ("last_seq", True, "last_seq: must be an integer."),
        ("epoch", 12, "epoch: Not a valid string."),
        ("epoch", "x" * 65, "epoch: Ensure this field has no more than 64 characters."),
    ],
)
async def test_a_bad_last_seq_or_epoch_is_an_error_and_the_connection_stays_open(race, field, value, expected):
    client, _ = await open_socket(race)

    await client.send_json_to({"type": "subscribe", "race_id": race.pk, field: value})

    error = await client.receive_json_from()
    assert error["type"] == "error" and error["code"] == 4400 and expected in error["message"]
    assert (await subscribe(client, race))["seq"] == 0
    await client.disconnect()


@database_sync_to_async
def store_without_broadcast(race: Race, seq: int) -> None:
    """An update another process stored and sent to its own clients, whose broadcast has not
    reached this process (Redis restarting, say)."""
    from races.models import RaceUpdate

    horse = horse_ids(race)[0]
    RaceUpdate.objects.create(
        race=race, seq=seq, kind="odds", published_at=START + dt.timedelta(seconds=seq), data=[{"horse_id": horse, "odds": 2.0 + seq}]
    )
    Race.objects.filter(pk=race.pk).update(update_seq=seq)


@pytest.mark.parametrize("client_saw, stored", [(2, 2), (2, 3)])
async def test_a_client_that_saw_more_than_this_process_heard_of_resumes_from_the_log(race, client_saw, stored):
    # Found by the soak run: a fan that had seq 3 from one process reconnected to another whose
    # view of the race still stood at 2, and was refused.
    await record_odds(race, 1)
    client, _ = await open_socket(race)  # this process's view: update 1
    for seq in range(2, stored + 1):
        await store_without_broadcast(race, seq)

    subscribed = await subscribe(client, race, last_seq=client_saw, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True and subscribed["seq"] == stored
    assert seqs(await receive(client, stored - client_saw)) == [("odds_update", s) for s in range(client_saw + 1, stored + 1)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()
