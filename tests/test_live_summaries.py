"""/ws/live subscribed to a meeting or a day: meeting_state with every race's summary, then a
race_summary as each changes, at most once a second per race (the latest wins), a status change
or a result never held back."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from live.protocol.fanout import race_fanout
from live.protocol.summaries import RaceTap, summary_board
from races.models import Meeting, Race
from races.selectors import race_summaries_get
from races.services import Actor, odds_snapshot_record, race_result_record, race_status_change
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]

START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
SUMMARY_FIELDS = {
    "id", "meeting_id", "venue", "race_number", "name", "race_datetime", "status", "favourite", "winners", "viewers",
}  # fmt: skip


@pytest.fixture(autouse=True)
def no_simulation(settings):
    settings.SIMULATION_ENABLED = False  # each test stores every update itself


@pytest.fixture
def meeting() -> Meeting:
    """A meeting of three races, the second starting first."""
    meeting = factories.meeting_create(code="NZ_20261204_SUM")
    for number, minutes in ((1, 30), (2, 0), (3, 60)):
        factories.race_create(
            meeting=meeting, starter_count=4, race_number=number, status=Race.Status.OPEN,
            race_datetime=START + dt.timedelta(minutes=minutes),
        )  # fmt: skip
    return meeting


@database_sync_to_async
def races_of(meeting: Meeting) -> list[Race]:
    return list(meeting.races.order_by("race_number"))


@database_sync_to_async
def record_odds(race: Race, first_price: float, n: int = 1) -> None:
    horses = list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))
    prices = [(horse, first_price + 2 * i) for i, horse in enumerate(horses)]
    odds_snapshot_record(race_id=race.pk, odds=prices, source="feed", taken_at=START + dt.timedelta(seconds=n))


@database_sync_to_async
def close(race: Race) -> None:
    race_status_change(race_id=race.pk, status="closed", at=START + dt.timedelta(minutes=1), actor=Actor("feed"))


@database_sync_to_async
def declare(race: Race) -> list[int]:
    horses = list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))
    placings = {horses[0]: 1, horses[1]: 1, horses[2]: 3, horses[3]: None}  # a dead heat for first
    race_result_record(race_id=race.pk, placings=placings, declared_at=START + dt.timedelta(minutes=5), source="feed")
    return horses


async def live_socket() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/live")
    assert (await communicator.connect())[0]
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout_s: float = 5) -> dict:
    return assert_valid(await communicator.receive_json_from(timeout=timeout_s))


async def watch(communicator: WebsocketCommunicator, **target) -> dict:
    await communicator.send_json_to({"type": "subscribe", **target})
    state = await receive(communicator)
    assert state["type"] == "meeting_state", state
    return state


async def test_a_meeting_is_sent_whole_in_start_order_then_each_change(meeting):
    first, second, third = await races_of(meeting)
    client = await live_socket()

    state = await watch(client, meeting_id=meeting.code)
    await record_odds(first, 3.0)
    summary = await receive(client)

    assert state["meeting_id"] == meeting.code
    assert [race["id"] for race in state["races"]] == [second.pk, first.pk, third.pk]
    assert all(set(race) == SUMMARY_FIELDS for race in state["races"])
    assert state["races"][1]["race_datetime"] == "2026-12-04T19:30:00+13:00"  # the venue's time
    assert [(race["status"], race["favourite"], race["winners"]) for race in state["races"]] == [
        ("open", None, None)
    ] * 3
    assert (summary["type"], summary["race_id"]) == ("race_summary", first.pk)
    favourite = summary["race"]["favourite"]
    assert (favourite["runner_number"], favourite["odds"]) == (1, 3.0)
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_odds_coming_fast_make_at_most_one_summary_a_second_the_latest_winning(meeting):
    race = (await races_of(meeting))[0]
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)

    await record_odds(race, 3.0, n=1)
    first = await receive(client)
    started = time.monotonic()
    for n, price in enumerate((4.0, 5.0, 6.0, 7.0), 2):
        await record_odds(race, price, n=n)
    second = await receive(client, timeout_s=3)
    waited_s = time.monotonic() - started

    assert first["race"]["favourite"]["odds"] == 3.0
    assert second["race"]["favourite"]["odds"] == 7.0  # the three between were superseded
    assert 0.6 < waited_s < 1.6
    assert await client.receive_nothing(timeout=1.2)
    await client.disconnect()


async def test_a_status_change_and_a_result_are_never_held_back(meeting):
    race = (await races_of(meeting))[0]
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)
    await record_odds(race, 3.0)
    await receive(client)

    started = time.monotonic()
    await close(race)
    closed = await receive(client)
    horses = await declare(race)
    official = await receive(client)
    waited_s = time.monotonic() - started

    assert closed["race"]["status"] == "closed"
    assert official["race"]["status"] == "official"
    assert [winner["horse_id"] for winner in official["race"]["winners"]] == horses[:2]  # a dead heat
    assert waited_s < 0.8
    await client.disconnect()


async def test_an_official_result_goes_out_once_though_two_updates_announce_it(meeting):
    race = (await races_of(meeting))[0]
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)
    await record_odds(race, 3.0)
    await receive(client)
    await close(race)
    await receive(client)

    await declare(race)  # a result_update and a race_status, stored together
    official = await receive(client)

    assert official["race"]["status"] == "official"
    assert await client.receive_nothing(timeout=1.5)
    await client.disconnect()


async def test_a_crowd_joining_a_meeting_reads_its_races_and_their_summaries_once(meeting, monkeypatch):
    import live.protocol.consumers
    import live.protocol.summaries

    reads = []

    def counted_read(**filters):
        reads.append(filters["race_ids"])
        time.sleep(0.2)  # a crowd arrives while the first read is under way
        return race_summaries_get(**filters)

    monkeypatch.setattr(live.protocol.summaries, "race_summaries_get", counted_read)
    race_lists_read = live.protocol.consumers._race_ids_read
    lists = []

    async def counted_list_read(target):
        lists.append(target)
        return await race_lists_read(target)

    monkeypatch.setattr(live.protocol.consumers, "_race_ids_read", counted_list_read)
    clients = [await live_socket() for _ in range(20)]

    states = await asyncio.gather(*(watch(client, meeting_id=meeting.code) for client in clients))
    late = await live_socket()
    late_state = await watch(late, meeting_id=meeting.code)  # within two seconds: the kept ones

    assert len(reads) == 1 and len(lists) == 1
    assert all(state == states[0] for state in states) and late_state["races"] == states[0]["races"]
    for client in (*clients, late):
        await client.disconnect()


async def test_a_joiner_waiting_on_another_connections_group_join_carries_on_when_that_one_is_killed(meeting):
    fanout = race_fanout()
    subscribe, stuck = fanout.subscribe, asyncio.Event()

    async def first_join_never_ends(race_id, subscriber):
        if not stuck.is_set():
            stuck.set()
            await asyncio.Event().wait()
        await subscribe(race_id, subscriber)

    fanout.subscribe = first_join_never_ends
    try:
        first, second = await live_socket(), await live_socket()
        await first.send_json_to({"type": "subscribe", "meeting_id": meeting.code})
        await asyncio.wait_for(stuck.wait(), 5)
        await second.send_json_to({"type": "subscribe", "meeting_id": meeting.code})
        await asyncio.sleep(0.1)  # waiting for the first's join

        first.future.cancel()  # killed by the server mid-join
        await asyncio.gather(first.future, return_exceptions=True)
        state = await receive(second)
    finally:
        del fanout.subscribe

    assert state["type"] == "meeting_state" and len(state["races"]) == 3
    await second.disconnect()
    assert summary_board().watchers == {} and not summary_board().joining


async def test_a_connection_lost_while_its_meeting_board_joins_leaves_nothing_on_the_board(meeting):
    # The client's TCP connection goes (Daphne says so at once, synchronously) while the
    # board is still joining the meeting's races; the join then finishes for nobody.
    fanout, board = race_fanout(), summary_board()
    subscribe, joining, go_on = fanout.subscribe, asyncio.Event(), asyncio.Event()
    watchers = []
    watch = board.watch

    async def join_that_waits(race_id, subscriber):
        if subscribe_calls.append(race_id) or len(subscribe_calls) == 2:
            joining.set()
            await go_on.wait()
        await subscribe(race_id, subscriber)

    async def recorded_watch(watcher, race_ids):
        watchers.append(watcher)
        await watch(watcher, race_ids)

    subscribe_calls: list[int] = []
    fanout.subscribe, board.watch = join_that_waits, recorded_watch
    try:
        client = await live_socket()
        await client.send_json_to({"type": "subscribe", "meeting_id": meeting.code})
        await asyncio.wait_for(joining.wait(), 5)
        watchers[0].connection_lost()  # the TCP connection is gone, mid-join
        go_on.set()
        await asyncio.sleep(0.2)
    finally:
        del fanout.subscribe, board.watch

    assert board.watchers == {} and not board.joining
    await client.disconnect()


async def test_a_change_made_while_a_joiner_waits_for_its_read_follows_its_meeting_state(meeting, monkeypatch):
    import live.protocol.summaries

    race = (await races_of(meeting))[0]
    reading = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_read(**filters):
        loop.call_soon_threadsafe(reading.set)
        time.sleep(0.3)
        return race_summaries_get(**filters)

    monkeypatch.setattr(live.protocol.summaries, "race_summaries_get", slow_read)
    client = await live_socket()
    await client.send_json_to({"type": "subscribe", "meeting_id": meeting.code})
    await asyncio.wait_for(reading.wait(), 5)
    await record_odds(race, 3.0)  # stored while the joiner's read is under way

    state = await receive(client)
    later = await receive(client, timeout_s=3)

    assert state["type"] == "meeting_state"
    assert (later["type"], later["race_id"], later["race"]["favourite"]["odds"]) == ("race_summary", race.pk, 3.0)
    await client.disconnect()


async def test_an_update_whose_broadcast_was_lost_while_redis_was_away_reaches_the_board(meeting, monkeypatch):
    # A race with no update since the board joined has nothing to fill a gap from: the fan-out,
    # back in its groups, tells the board to read its races again.
    import live.protocol.receivers

    race = (await races_of(meeting))[0]
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)

    async def lost(**_):
        pass

    monkeypatch.setattr(live.protocol.receivers, "publish_logged_update", lost)
    await close(race)  # stored; its broadcast lost with Redis
    assert await client.receive_nothing(timeout=0.3)
    await race_fanout()._catch_up()
    summary = await receive(client)

    assert (summary["race_id"], summary["race"]["status"]) == (race.pk, "closed")
    await client.disconnect()


async def test_a_change_due_now_is_not_held_behind_odds_waiting_for_their_second(meeting):
    first, second, _ = await races_of(meeting)
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)
    await record_odds(first, 3.0, n=1)
    await receive(client)
    started = time.monotonic()
    await record_odds(first, 4.0, n=2)  # waits for the end of the first race's second

    await record_odds(second, 5.0, n=3)  # the second race's first change: due at once
    await close(first)  # a status change: never held back
    arrived = {}
    while len(arrived) < 2:
        summary = await receive(client, timeout_s=3)
        key = (summary["race_id"], summary["race"]["status"], summary["race"]["favourite"]["odds"])
        arrived.setdefault(key, time.monotonic() - started)

    # Both at once, not at the end of the first race's second (the odds of 4.0 go with the close).
    assert set(arrived) == {(second.pk, "open", 5.0), (first.pk, "closed", 4.0)}
    assert max(arrived.values()) < 0.6
    await client.disconnect()


async def test_a_day_covers_every_meeting_of_that_date(meeting):
    other = await database_sync_to_async(factories.meeting_create)(code="NZ_20261204_OTH", venue="Cambridge")
    elsewhere = await database_sync_to_async(factories.race_create)(meeting=other, starter_count=3)
    client = await live_socket()

    state = await watch(client, date="2026-12-04")
    empty = await watch(client, date="2026-12-25")

    assert state["date"] == "2026-12-04"
    assert {race["meeting_id"] for race in state["races"]} == {meeting.code, other.code}
    assert elsewhere.pk in {race["id"] for race in state["races"]}
    assert empty == {"type": "meeting_state", "date": "2026-12-25", "races": []}
    await client.disconnect()


async def test_a_meeting_that_is_not_there_is_an_error_naming_it():
    client = await live_socket()

    await client.send_json_to({"type": "subscribe", "meeting_id": "NZ_20991231_NOP"})
    error = await receive(client)

    assert error == {
        "type": "error", "code": 4004, "message": "Meeting not found: no meeting 'NZ_20991231_NOP'",
        "meeting_id": "NZ_20991231_NOP",
    }  # fmt: skip
    await client.disconnect()


async def test_two_connections_share_one_tap_per_race_and_one_encoding(meeting):
    race = (await races_of(meeting))[0]
    first, second = await live_socket(), await live_socket()
    await watch(first, meeting_id=meeting.code)
    await watch(second, meeting_id=meeting.code)

    taps = [s for s in race_fanout().subscribers[race.pk] if isinstance(s, RaceTap)]
    await record_odds(race, 3.0)
    texts = [await first.receive_from(timeout=5), await second.receive_from(timeout=5)]

    assert len(taps) == 1
    assert texts[0] == texts[1]
    await first.disconnect()
    await second.disconnect()


async def test_unsubscribing_from_a_meeting_ends_its_summaries_and_lets_go_of_its_races(meeting):
    races = await races_of(meeting)
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)

    await client.send_json_to({"type": "unsubscribe", "meeting_id": meeting.code})
    answer = await receive(client)
    await record_odds(races[0], 3.0)

    assert answer == {"type": "unsubscribed", "meeting_id": meeting.code}
    assert await client.receive_nothing(timeout=0.5)
    assert not any(race.pk in race_fanout().subscribers for race in races)
    assert summary_board().watchers == {}
    await client.disconnect()


async def test_a_connection_that_ends_lets_go_of_every_race_it_watched(meeting):
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)
    await watch(client, date="2026-12-04")
    await client.send_json_to({"type": "subscribe", "race_id": (await races_of(meeting))[0].pk})
    await receive(client)

    await client.disconnect()
    await client.wait()
    await asyncio.sleep(0)

    assert summary_board().watchers == {} and summary_board().taps == {}
    assert not summary_board().joining and summary_board().kept == {}
    assert not any(race.pk in race_fanout().subscribers for race in (await races_of(meeting)))


async def test_races_meetings_and_days_count_together_against_the_limit(meeting, settings):
    settings.WEBSOCKET_MAX_SUBSCRIPTIONS = 2
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)
    await client.send_json_to({"type": "subscribe", "race_id": (await races_of(meeting))[0].pk})
    await receive(client)
    await receive(client)

    await client.send_json_to({"type": "subscribe", "date": "2026-12-04"})
    refused = await receive(client)

    assert (refused["code"], refused["date"]) == (4429, "2026-12-04")
    await client.disconnect()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "subscribe", "race_id": 1, "meeting_id": "X"}, "give one of race_id, meeting_id and date, not race_id and meeting_id."),
        ({"type": "subscribe", "date": "4/12/2026"}, "date: must be a date, YYYY-MM-DD."),
        ({"type": "subscribe", "date": "2026-02-30"}, "date: must be a date, YYYY-MM-DD."),
        ({"type": "subscribe", "meeting_id": 7}, "meeting_id: Not a valid string."),
        ({"type": "subscribe", "meeting_id": "M" * 65}, "meeting_id: Ensure this field has no more than 64 characters."),
        ({"type": "subscribe", "meeting_id": "NZ\x00"}, "meeting_id: Null characters are not allowed."),
        ({"type": "unsubscribe", "date": None}, "date: This field may not be null."),
    ],
)  # fmt: skip
async def test_bad_input_is_answered_with_an_error(message, error):
    client = await live_socket()

    await client.send_json_to(message)

    assert await receive(client) == {"type": "error", "code": 4400, "message": error}
    await client.disconnect()


async def test_a_consumer_killed_by_the_server_gives_back_its_races_and_meetings(meeting, monkeypatch):
    # Daphne cancels a consumer still busy 10 s after its client vanished; its disconnect never
    # runs. Here it is killed mid-subscribe, holding a meeting's board, a race's stream and
    # another race's stream with its summary.
    import live.protocol.consumers
    from live.protocol.limits import connections_per_address

    race, other, _ = await races_of(meeting)
    client = await live_socket()
    await watch(client, meeting_id=meeting.code)
    await client.send_json_to({"type": "subscribe", "race_id": race.pk})
    await receive(client)
    await receive(client)
    await client.send_json_to({"type": "subscribe", "race_id": other.pk, "summary": True})
    assert [(await receive(client))["type"] for _ in range(3)] == ["initial_state", "subscribed", "race_summary"]
    stuck = asyncio.Event()

    async def read_that_never_ends(target):
        stuck.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(live.protocol.consumers, "_race_ids_read", read_that_never_ends)
    await client.send_json_to({"type": "subscribe", "date": "2026-12-04"})
    await asyncio.wait_for(stuck.wait(), 5)

    client.future.cancel()  # what Daphne's application_checker does
    await asyncio.gather(client.future, return_exceptions=True)

    assert summary_board().watchers == {} and summary_board().taps == {}
    assert not summary_board().joining and summary_board().kept == {}
    assert not any(r.pk in race_fanout().subscribers for r in await races_of(meeting))
    assert connections_per_address.total == 0


async def test_a_race_followed_with_its_summary_gets_that_races_alone_now_and_as_it_changes(meeting):
    first, second, _ = await races_of(meeting)
    client = await live_socket()

    await client.send_json_to({"type": "subscribe", "race_id": first.pk, "summary": True})
    opening = [await receive(client) for _ in range(3)]
    await record_odds(second, 5.0)  # another race of the meeting: nothing of it
    await record_odds(first, 3.0, n=2)
    arrived = []
    while len(arrived) < 2:  # the odds_update and the race_summary, in either order
        arrived.append(await receive(client))

    assert [m["type"] for m in opening] == ["initial_state", "subscribed", "race_summary"]
    assert (opening[2]["race_id"], opening[2]["race"]["viewers"]) == (first.pk, 1)
    summary = next(m for m in arrived if m["type"] == "race_summary")
    assert (summary["race_id"], summary["race"]["favourite"]["odds"]) == (first.pk, 3.0)
    assert {m["type"] for m in arrived} == {"odds_update", "race_summary"}
    assert await client.receive_nothing(timeout=0.5)

    await client.send_json_to({"type": "unsubscribe", "race_id": first.pk})
    assert (await receive(client))["type"] == "unsubscribed"
    assert summary_board().watchers == {} and summary_board().taps == {}
    await client.disconnect()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("true", "must be true or false."), (1, "must be true or false."), (None, "This field may not be null.")],
)
async def test_a_summary_that_is_not_true_or_false_is_refused(meeting, value, problem):
    client = await live_socket()

    await client.send_json_to({"type": "subscribe", "race_id": 1, "summary": value})

    assert await receive(client) == {"type": "error", "code": 4400, "message": f"summary: {problem}"}
    await client.disconnect()
