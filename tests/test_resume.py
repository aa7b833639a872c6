"""Numbered updates and gap-free resume: last_seq in the URL on reconnecting, or in a subscribe."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test.utils import CaptureQueriesContext

import live.protocol.streams
from races.models import Race
from races.services import odds_snapshot_record, race_reset, race_result_record
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def race(settings) -> Race:
    settings.SIMULATION_ENABLED = False  # the test publishes every update itself
    # Its market is open: each odds update is one update (a scheduled race's first odds would
    # open it with a race_status first).
    return factories.race_create(starter_count=4, status=Race.Status.OPEN)


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


# An official result posted while the market is open is three updates: the race closes, it is
# official, and its result_update.
RESULT_UPDATES = ("race_status", "race_status", "result_update")


def result_seqs(first_seq: int) -> list[tuple[str, int]]:
    return [(kind, seq) for seq, kind in enumerate(RESULT_UPDATES, first_seq)]


@database_sync_to_async
def record_result(race: Race) -> None:
    horses = horse_ids(race)
    race_result_record(
        race_id=race.pk,
        placings={h: i for i, h in enumerate(horses, 1)},
        declared_at=START + dt.timedelta(minutes=5),
        source="feed",
    )


@database_sync_to_async
def epoch_of(race: Race) -> str:
    return Race.objects.get(pk=race.pk).updates_epoch


async def open_socket(race: Race, query: str = "") -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, f"/ws/races/{race.pk}{query}")
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


async def resume_socket(
    race: Race, *, last_seq: int, epoch: str | None = None
) -> tuple[WebsocketCommunicator, dict, dict]:
    """Reconnect as the board does: the resume point in the URL. Return the communicator, its
    initial_state and the subscribed that answers the resume."""
    query = f"?last_seq={last_seq}" + (f"&epoch={epoch}" if epoch else "")
    communicator, initial = await open_socket(race, query)
    subscribed = assert_valid(await communicator.receive_json_from(timeout=5))
    assert subscribed["type"] == "subscribed", subscribed
    return communicator, initial, subscribed


async def test_updates_are_numbered_from_1_and_subscribed_says_the_epoch_and_newest_seq(race):
    client, initial = await open_socket(race)
    assert initial["epoch"] == await epoch_of(race)
    subscribed = await subscribe(client, race)
    assert (subscribed["epoch"], subscribed["seq"]) == (await epoch_of(race), 0)

    await record_odds(race, 1)
    await record_odds(race, 2)
    await record_result(race)

    assert seqs(await receive(client, 5)) == [("odds_update", 1), ("odds_update", 2), *result_seqs(3)]
    await client.disconnect()


async def test_a_client_that_only_listens_gets_the_latest_update_then_every_later_one(race):
    await record_odds(race, 1)
    client, _ = await open_socket(race)  # never sends anything

    assert seqs(await receive(client, 1)) == [("odds_update", 1)]
    await record_odds(race, 2)
    await record_result(race)
    assert seqs(await receive(client, 4)) == [("odds_update", 2), *result_seqs(3)]
    await client.disconnect()


async def test_a_reconnecting_client_gets_every_missed_update_in_order_then_live_ones(race):
    client, initial = await open_socket(race)
    await record_odds(race, 1)
    last = (await receive(client, 1))[0]
    await client.disconnect()  # the phone changes cell ...
    for n in (2, 3, 4):
        await record_odds(race, n)

    client, _, subscribed = await resume_socket(race, last_seq=last["seq"], epoch=initial["epoch"])

    assert subscribed["resumed"] is True and subscribed["seq"] == 4
    missed = await receive(client, 3)
    assert seqs(missed) == [("odds_update", 2), ("odds_update", 3), ("odds_update", 4)]
    assert [m["odds"][0]["odds"] for m in missed] == [4.0, 5.0, 6.0]
    await record_result(race)
    assert seqs(await receive(client, 3)) == result_seqs(5)
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_client_that_missed_nothing_resumes_with_nothing_replayed(race):
    await record_odds(race, 1)

    client, _, subscribed = await resume_socket(race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True and subscribed["seq"] == 1
    assert await client.receive_nothing(timeout=0.2)  # not even the latest odds: it has them
    await record_odds(race, 2)
    assert seqs(await receive(client, 1)) == [("odds_update", 2)]
    await client.disconnect()


async def test_the_missed_result_is_replayed_after_the_missed_odds(race):
    for n in (1, 2):
        await record_odds(race, n)
    await record_result(race)

    client, _, subscribed = await resume_socket(race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True
    assert seqs(await receive(client, 4)) == [("odds_update", 2), *result_seqs(3)]
    await client.disconnect()


async def test_too_far_behind_it_is_told_it_did_not_resume_and_starts_afresh(race, settings):
    settings.WEBSOCKET_RESUME_MAX_UPDATES = 2
    for n in (1, 2, 3, 4):
        await record_odds(race, n)

    client, initial, subscribed = await resume_socket(race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is False and subscribed["seq"] == 4
    assert initial["type"] == "initial_state"  # the race as it is: the client starts from here
    assert seqs(await receive(client, 1)) == [("odds_update", 4)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_seq_from_before_the_race_was_reset_does_not_resume(race):
    for n in (1, 2):
        await record_odds(race, n)
    old_epoch = await epoch_of(race)
    await database_sync_to_async(race_reset)(race_id=race.pk)
    await record_odds(race, 1)  # a reset race is scheduled again: this opens it (seq 1) at seq 2
    await record_odds(race, 2)  # the same numbers again, in a new epoch

    client, initial, subscribed = await resume_socket(race, last_seq=1, epoch=old_epoch)

    assert subscribed["resumed"] is False and subscribed["epoch"] == initial["epoch"] != old_epoch
    assert initial["data"]["race"]["status"] == "open"  # a fresh start needs no race_status
    assert seqs(await receive(client, 1)) == [("odds_update", 3)]
    await client.disconnect()


async def test_a_seq_the_race_has_not_reached_does_not_resume_even_without_an_epoch(race):
    await record_odds(race, 1)

    client, _, subscribed = await resume_socket(race, last_seq=7)

    assert subscribed["resumed"] is False
    assert seqs(await receive(client, 1)) == [("odds_update", 1)]
    await client.disconnect()


async def test_an_update_published_during_the_replay_follows_it_once_in_order(race, monkeypatch):
    for n in (1, 2, 3):
        await record_odds(race, n)
    real_read = live.protocol.streams._race_updates_read

    async def read_while_an_update_is_published(race_id, plan):
        rows = await real_read(race_id, plan)
        await record_odds(race, 4)  # stored and broadcast while the replay is being read
        return rows

    monkeypatch.setattr(live.protocol.streams, "_race_updates_read", read_while_an_update_is_published)

    client, _, subscribed = await resume_socket(race, last_seq=1, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True
    assert seqs(await receive(client, 3)) == [("odds_update", 2), ("odds_update", 3), ("odds_update", 4)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_a_resume_on_a_streaming_connection_sends_only_what_it_has_not_sent(race):
    client, _ = await open_socket(race)
    for n in (1, 2, 3):
        await record_odds(race, n)
    await receive(client, 3)

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    # 2 and 3 went out on this connection already: never a duplicate.
    assert subscribed["resumed"] is True and subscribed["seq"] == 3
    assert await client.receive_nothing(timeout=0.2)
    await record_odds(race, 4)
    assert seqs(await receive(client, 1)) == [("odds_update", 4)]
    await client.disconnect()


async def test_a_resume_on_a_streaming_connection_fills_in_what_came_before_it(race):
    for n in (1, 2, 3):
        await record_odds(race, n)
    client, _ = await open_socket(race)
    assert seqs(await receive(client, 1)) == [("odds_update", 3)]  # the latest, on connecting

    subscribed = await subscribe(client, race, last_seq=1, epoch=await epoch_of(race))

    # Only 2: 3 was sent on connecting. Never a gap, never a duplicate.
    assert subscribed["resumed"] is True and subscribed["seq"] == 3
    assert seqs(await receive(client, 1)) == [("odds_update", 2)]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_repeated_resumes_on_one_connection_read_the_log_once(race):
    for n in (1, 2, 3):
        await record_odds(race, n)
    client, _ = await open_socket(race)
    await receive(client, 1)
    assert (await subscribe(client, race, last_seq=0))["resumed"] is True
    assert seqs(await receive(client, 2)) == [("odds_update", 1), ("odds_update", 2)]

    queries = await database_sync_to_async(lambda: CaptureQueriesContext(connections["default"]))()
    await database_sync_to_async(queries.__enter__)()
    try:
        for _ in range(5):
            assert (await subscribe(client, race, last_seq=0))["resumed"] is True
    finally:
        await database_sync_to_async(queries.__exit__)(None, None, None)

    assert len(queries.captured_queries) == 0  # it has been sent everything: nothing to read
    assert await client.receive_nothing(timeout=0.2)
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


BAD_RESUMES = [
    ("last_seq", -1, "last_seq: must be 0 or more."),
    ("last_seq", "3", "last_seq: must be an integer."),
    ("last_seq", 2.5, "last_seq: must be an integer."),
    ("last_seq", True, "last_seq: must be an integer."),
    ("epoch", 12, "epoch: Not a valid string."),
    ("epoch", "x" * 65, "epoch: Ensure this field has no more than 64 characters."),
]


@pytest.mark.parametrize("field, value, expected", BAD_RESUMES)
async def test_a_bad_last_seq_or_epoch_is_an_error_and_the_connection_stays_open(race, field, value, expected):
    client, _ = await open_socket(race)

    await client.send_json_to({"type": "subscribe", "race_id": race.pk, field: value})

    error = await client.receive_json_from()
    assert error["type"] == "error" and error["code"] == 4400 and expected in error["message"]
    assert (await subscribe(client, race))["seq"] == 0
    await client.disconnect()


BAD_URL_RESUMES = {
    "negative": ("?last_seq=-1", "last_seq: must be an integer."),
    "not a number": ("?last_seq=abc", "last_seq: must be an integer."),
    "a fraction": ("?last_seq=2.5", "last_seq: must be an integer."),
    "huge": ("?last_seq=" + "9" * 40, "last_seq: must be an integer."),
    "twice": ("?last_seq=1&last_seq=2", "given once"),
    "epoch alone": ("?epoch=abc", "epoch: only with last_seq."),
    "epoch too long": ("?last_seq=1&epoch=" + "x" * 65, "epoch: Ensure this field has no more than 64 characters."),
    "empty epoch": ("?last_seq=1&epoch=", "epoch"),
}


@pytest.mark.parametrize("query, expected", BAD_URL_RESUMES.values(), ids=BAD_URL_RESUMES.keys())
async def test_a_bad_resume_in_the_url_is_an_error_and_the_race_is_served_afresh(race, query, expected):
    await record_odds(race, 1)
    client, _ = await open_socket(race, query)

    error = await client.receive_json_from()
    assert error["type"] == "error" and error["code"] == 4400 and expected in error["message"]
    assert seqs(await receive(client, 1)) == [("odds_update", 1)]
    await record_odds(race, 2)
    assert seqs(await receive(client, 1)) == [("odds_update", 2)]
    await client.disconnect()


@database_sync_to_async
def store_without_broadcast(race: Race, seq: int) -> None:
    """An update another process stored and sent to its own clients, whose broadcast has not
    reached this process (Redis restarting, say)."""
    from races.models import RaceUpdate

    horse = horse_ids(race)[0]
    RaceUpdate.objects.create(
        race=race,
        seq=seq,
        kind="odds",
        published_at=START + dt.timedelta(seconds=seq),
        data=[{"horse_id": horse, "odds": 2.0 + seq}],
    )
    Race.objects.filter(pk=race.pk).update(update_seq=seq)


@pytest.mark.parametrize("client_saw, stored", [(2, 2), (2, 3)])
async def test_a_client_that_saw_more_than_this_process_heard_of_resumes_from_the_log(race, client_saw, stored):
    # Found by the soak run: a fan that had seq 3 from one process reconnected to another whose
    # view of the race still stood at 2, and was refused.
    await record_odds(race, 1)
    first, _ = await open_socket(race)  # this process's view: update 1
    for seq in range(2, stored + 1):
        await store_without_broadcast(race, seq)

    client, _, subscribed = await resume_socket(race, last_seq=client_saw, epoch=await epoch_of(race))

    assert subscribed["resumed"] is True and subscribed["seq"] == stored
    assert seqs(await receive(client, stored - client_saw)) == [
        ("odds_update", s) for s in range(client_saw + 1, stored + 1)
    ]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()
    await first.disconnect()


async def test_a_client_back_after_a_scratching_and_a_status_change_gets_both_in_order_then_live_ones(race):
    from races.services import Actor, race_status_change, starter_scratch

    await record_odds(race, 1)
    client, initial = await open_socket(race)
    last = (await receive(client, 1))[0]
    await client.disconnect()  # the phone sleeps ...
    scratched = (await database_sync_to_async(horse_ids)(race))[3]
    await database_sync_to_async(starter_scratch)(
        race_id=race.pk, horse_id=scratched, at=START + dt.timedelta(minutes=1), actor=Actor("feed")
    )
    await database_sync_to_async(race_status_change)(
        race_id=race.pk, status="closed", at=START + dt.timedelta(minutes=2), actor=Actor("feed")
    )

    client, initial, subscribed = await resume_socket(race, last_seq=last["seq"], epoch=initial["epoch"])

    assert subscribed["resumed"] is True
    assert initial["data"]["race"]["status"] == "closed"  # the card as it is now
    assert [s["scratched"] for s in initial["data"]["starters"]] == [False, False, False, True]
    missed = await receive(client, 2)
    assert [(m["type"], m["seq"]) for m in missed] == [("starter_update", 2), ("race_status", 3)]
    assert (missed[0]["change"], missed[0]["starter"]["horse_id"]) == ("scratched", scratched)
    assert (missed[1]["previous"], missed[1]["status"]) == ("open", "closed")
    await record_result_without(race, scratched)
    assert seqs(await receive(client, 2)) == [("race_status", 4), ("result_update", 5)]  # official
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


@database_sync_to_async
def record_result_without(race: Race, scratched: int) -> None:
    runners = [h for h in horse_ids(race) if h != scratched]
    race_result_record(
        race_id=race.pk,
        placings={h: i for i, h in enumerate(runners, 1)},
        declared_at=START + dt.timedelta(minutes=5),
        source="feed",
    )
