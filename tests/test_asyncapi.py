"""docs/asyncapi.yaml describes every message of the live protocol exactly: the shared schemas, this
server's additions and its own messages; the official parser finds nothing wrong with it."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from jsonschema import Draft7Validator

from tests.conftest import require_service
from tests.spec import (
    ASYNCAPI_DOCUMENT,
    REPO_DIR,
    SCHEMA_DIR,
    SCHEMA_NAMES,
    assert_valid,
    asyncapi_validator,
    server_message_types,
    validator,
)
from tests.spec import asyncapi as load_asyncapi

PARSER_DIR = Path(__file__).resolve().parent / "asyncapi"
MESSAGE_NAMES = (
    *SCHEMA_NAMES, "race_status", "starter_update", "interim_result", "error", "ping", "pong",
    "unsubscribe", "unsubscribed", "subscribe_summaries", "meeting_state", "race_summary",
)  # fmt: skip
# What a client may send on each channel: /ws/races/{race_id} and /ws/live.
CLIENT_MESSAGE_NAMES = {
    "race": {"subscribe", "ping"},
    "live": {"subscribe", "subscribe_summaries", "unsubscribe", "ping"},
}
# Close codes that Daphne's WebSocket library (autobahn) sends itself, or that end a connection
# normally; the rest are live.protocol.messages' CLOSE_* constants.
LIBRARY_CLOSE_CODES = {1000, 1002, 1007}
PARSE_TIMEOUT_S = 60  # the parser takes about 2 s; a hang must not hold the suite


@pytest.fixture(scope="module")
def asyncapi() -> dict:
    return load_asyncapi()


def resolve(document: dict, reference: str) -> dict:
    assert reference.startswith("#/"), reference
    node = document
    for part in reference[2:].split("/"):
        node = node[part]
    return node


def shared_schema(name: str) -> dict:
    shared = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    shared.pop("$schema")
    return shared


def close_codes_in_table(markdown: str) -> list[int]:
    return [int(code) for code in re.findall(r"^\| (\d{4}) \|", markdown, flags=re.MULTILINE)]


def test_it_is_an_asyncapi_3_1_document_for_the_race_and_live_channels(asyncapi):
    assert asyncapi["asyncapi"] == "3.1.0"
    assert set(asyncapi["channels"]) == {"race", "live"}
    assert asyncapi["channels"]["race"]["address"] == "/ws/races/{race_id}"
    assert set(asyncapi["channels"]["race"]["parameters"]) == {"race_id"}
    assert asyncapi["channels"]["live"]["address"] == "/ws/live"
    assert "parameters" not in asyncapi["channels"]["live"]


def test_it_describes_every_message_the_server_sends_and_receives(asyncapi):
    from live.protocol.messages import LiveMessage, ServerMessage, WSMessage

    server_types = {message_class.type for message_class in ServerMessage.__args__}

    assert set(asyncapi["components"]["messages"]) == set(MESSAGE_NAMES)
    assert server_message_types() == server_types
    messages = asyncapi["components"]["messages"]
    for channel, client_types in (("race", WSMessage.CLIENT_TYPES), ("live", LiveMessage.CLIENT_TYPES)):
        assert {messages[name]["name"] for name in CLIENT_MESSAGE_NAMES[channel]} == set(client_types)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_each_spec_message_payload_is_the_shared_schema_with_this_servers_additions(asyncapi, name):
    payload = asyncapi["components"]["messages"][name]["payload"]

    assert set(payload) == {"allOf"}
    shared, additions = payload["allOf"]
    assert shared == shared_schema(name)
    assert additions["title"] == f"this server's additions to {name}"


@pytest.mark.parametrize("name", MESSAGE_NAMES)
def test_each_payload_is_a_draft_07_schema_as_asyncapi_reads_it(asyncapi, name):
    Draft7Validator.check_schema(asyncapi["components"]["messages"][name]["payload"])


def test_every_reference_resolves(asyncapi):
    references = []

    def collect(node):
        if isinstance(node, dict):
            if "$ref" in node:
                references.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(asyncapi)

    assert len(references) > 10
    for reference in references:
        assert resolve(asyncapi, reference), reference


@pytest.mark.parametrize("channel", ["race", "live"])
def test_every_operation_sends_or_receives_messages_of_its_channel(asyncapi, channel):
    channel_messages = asyncapi["channels"][channel]["messages"]
    received, sent = set(), set()
    for operation in asyncapi["operations"].values():
        if operation["channel"] != {"$ref": f"#/channels/{channel}"}:
            continue
        references = operation["messages"] + operation.get("reply", {}).get("messages", [])
        for message in references:
            assert message["$ref"].startswith(f"#/channels/{channel}/messages/"), message
            assert message["$ref"].rpartition("/")[2] in channel_messages
        names = {message["$ref"].rpartition("/")[2] for message in references}
        (received if operation["action"] == "receive" else sent).update(names)

    assert received & set(CLIENT_MESSAGE_NAMES[channel]) == CLIENT_MESSAGE_NAMES[channel]
    assert sent | received == set(channel_messages)
    assert {name for name in channel_messages} <= set(asyncapi["components"]["messages"])


def test_every_message_is_on_a_channel(asyncapi):
    on_channels = {name for channel in asyncapi["channels"].values() for name in channel["messages"]}

    assert on_channels == set(asyncapi["components"]["messages"])
    assert "unsubscribe" not in asyncapi["channels"]["race"]["messages"]


@pytest.mark.parametrize("name", MESSAGE_NAMES)
def test_every_example_validates_against_its_payload_and_the_shared_schema(asyncapi, name):
    examples = asyncapi["components"]["messages"][name]["examples"]

    assert examples
    for example in examples:
        assert not list(asyncapi_validator(name).iter_errors(example["payload"])), example["name"]
        if name in SCHEMA_NAMES:
            assert not list(validator(name).iter_errors(example["payload"])), example["name"]


def first_example(name: str) -> dict:
    return copy.deepcopy(load_asyncapi()["components"]["messages"][name]["examples"][0]["payload"])


def without(key: str):
    return lambda message: message.pop(key)


# Changes to the document's first example of a message, each of which its payload must refuse.
REFUSED_CHANGES = {
    "odds_update with seq 0": ("odds_update", lambda m: m.update(seq=0)),
    "odds_update without seq": ("odds_update", without("seq")),
    "odds_update with an undocumented field": ("odds_update", lambda m: m.update(note="x")),
    "odds with an undocumented field": ("odds_update", lambda m: m["odds"][0].update(name="x")),
    "odds_update in local time": ("odds_update", lambda m: m.update(timestamp="2026-12-04T18:05:22+13:00")),
    "result_update without seq": ("result_update", without("seq")),
    "a non-finisher with a placing": ("result_update", lambda m: m["results"][1].update(placing=2)),
    "initial_state without epoch": ("initial_state", without("epoch")),
    "initial_state with a long epoch": ("initial_state", lambda m: m.update(epoch="e" * 17)),
    "a race with an undocumented field": ("initial_state", lambda m: m["data"]["race"].update(name="x")),
    "a starter with an undocumented field": ("initial_state", lambda m: m["data"]["starters"][0].update(age=4)),
    "subscribed without epoch": ("subscribed", without("epoch")),
    "subscribed without seq": ("subscribed", without("seq")),
    "subscribed with seq -1": ("subscribed", lambda m: m.update(seq=-1)),
    "subscribed with resumed a string": ("subscribed", lambda m: m.update(resumed="yes")),
    "subscribe with last_seq -1": ("subscribe", lambda m: m.update(last_seq=-1)),
    "subscribe with an epoch over 64": ("subscribe", lambda m: m.update(epoch="e" * 65)),
    "error with another code": ("error", lambda m: m.update(code=4000)),
    "pong with a field": ("pong", lambda m: m.update(race_id=1)),
}


@pytest.mark.parametrize(("name", "change"), REFUSED_CHANGES.values(), ids=REFUSED_CHANGES)
def test_this_servers_additions_are_schema_properties_not_prose(name, change):
    message = first_example(name)
    change(message)

    assert list(asyncapi_validator(name).iter_errors(message))


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe", "race_id": 1},
        {"type": "subscribe", "race_id": 1, "last_seq": 0, "epoch": "3f9c0a1b2c4d"},
        {"type": "subscribe", "race_id": 1, "last_seq": 2**53},
        {"type": "subscribe", "race_id": 1, "last_seq": 2**53 + 1},
        {"type": "subscribe", "race_id": 1, "last_seq": -1},
        {"type": "subscribe", "race_id": 1, "last_seq": "41"},
        {"type": "subscribe", "race_id": 1, "last_seq": None},
        {"type": "subscribe", "race_id": 1, "epoch": ""},
        {"type": "subscribe", "race_id": 1, "epoch": "e" * 64},
        {"type": "subscribe", "race_id": 1, "epoch": "e" * 65},
        {"type": "subscribe", "race_id": 1, "epoch": 3},
        {"type": "subscribe", "race_id": 1, "pad": "ignored"},
        {"type": "subscribe", "race_id": True},
        {"type": "subscribe"},
        {"type": "ping"},
        {"type": "ping", "race_id": 1, "pad": "ignored"},
        {"type": "ping", "race_id": "1"},
        {"type": "ping", "last_seq": -1},
    ],
)
def test_a_client_message_is_valid_under_its_payload_exactly_when_the_server_accepts_it(message):
    from live.protocol.messages import LiveMessage, WSMessage

    accepted = WSMessage(data=message).is_valid()

    assert (not list(asyncapi_validator(message["type"]).iter_errors(message))) == accepted
    # /ws/live reads them alike.
    assert LiveMessage(data=message).is_valid() == accepted


@pytest.mark.parametrize(
    "message",
    [
        {"type": "unsubscribe", "race_id": 1},
        {"type": "unsubscribe", "race_id": 0},
        {"type": "unsubscribe", "race_id": 1, "last_seq": 3, "pad": "ignored"},
        {"type": "unsubscribe", "race_id": "1"},
        {"type": "unsubscribe", "race_id": 1.5},
        {"type": "unsubscribe", "race_id": None},
        {"type": "unsubscribe", "race_id": 1, "last_seq": -1},
        {"type": "unsubscribe", "race_id": 1, "epoch": ""},
        {"type": "unsubscribe"},
    ],
)
def test_an_unsubscribe_is_valid_under_its_payload_exactly_when_live_accepts_it(message):
    from live.protocol.messages import LiveMessage

    accepted = LiveMessage(data=message).is_valid()

    assert (not list(asyncapi_validator("unsubscribe").iter_errors(message))) == accepted


def test_the_resume_query_in_the_url_is_documented_as_the_server_reads_it(asyncapi):
    binding = asyncapi["channels"]["race"]["bindings"]["ws"]
    query = binding["query"]
    query_validator = Draft7Validator(query)

    # The WebSockets binding 0.1.0: the query "MUST be of type 'object' and have a 'properties' key".
    assert (binding["bindingVersion"], binding["method"], query["type"]) == ("0.1.0", "GET", "object")
    assert set(query["properties"]) == {"last_seq", "epoch"}
    assert not list(query_validator.iter_errors({"last_seq": "41", "epoch": "3f9c0a1b2c4d"}))
    assert not list(query_validator.iter_errors({"last_seq": "0", "other": "ignored"}))
    for refused in (
        {"last_seq": "-1"},
        {"last_seq": "1" * 17},
        {"epoch": "3f9c0a1b2c4d"},
        {"last_seq": "1", "epoch": ""},
    ):
        assert list(query_validator.iter_errors(refused)), refused


def test_the_close_codes_are_those_of_the_protocol_page_and_the_server(asyncapi):
    from live.protocol import messages

    documented = close_codes_in_table(asyncapi["channels"]["race"]["description"])
    protocol_page = (REPO_DIR / "docs" / "protocol.md").read_text().split("## Close codes", 1)[1].split("\n## ", 1)[0]
    server_codes = {value for name, value in vars(messages).items() if name.startswith("CLOSE_")}

    assert documented == close_codes_in_table(protocol_page)
    assert set(documented) == server_codes | LIBRARY_CLOSE_CODES


def test_the_official_parser_reports_nothing_at_all():
    node = shutil.which("node")
    require_service(node is not None, "node is not installed: the AsyncAPI parser needs Node 20 or later")
    require_service(
        (PARSER_DIR / "node_modules" / "@asyncapi" / "parser").is_dir(),
        "the AsyncAPI parser is not installed: run `npm ci --prefix tests/asyncapi`",
    )
    pinned = json.loads((PARSER_DIR / "package.json").read_text())["dependencies"]["@asyncapi/parser"]

    parsed = subprocess.run(
        [node, str(PARSER_DIR / "parse.mjs"), str(ASYNCAPI_DOCUMENT)],
        capture_output=True,
        text=True,
        timeout=PARSE_TIMEOUT_S,
        check=False,
    )

    assert parsed.returncode == 0, parsed.stderr
    report = json.loads(parsed.stdout)
    assert report["diagnostics"] == []
    assert (report["parser"], report["asyncapi"]) == (pinned, "3.1.0")
    assert sorted(report["messages"]) == sorted(MESSAGE_NAMES)


def test_the_parser_is_pinned_exactly_in_its_package_and_lock():
    package = json.loads((PARSER_DIR / "package.json").read_text())
    lock = json.loads((PARSER_DIR / "package-lock.json").read_text())
    pinned = package["dependencies"]["@asyncapi/parser"]

    assert re.fullmatch(r"3\.6\.\d+", pinned), pinned
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    assert lock["packages"]["node_modules/@asyncapi/parser"]["version"] == pinned
    assert all(entry.get("integrity") for path, entry in lock["packages"].items() if path)


# The updates of race_with_a_whole_day, in seq order.
WHOLE_DAY = [
    "starter_update",  # a scratching before the market
    "race_status", "odds_update",  # the first odds open the market
    "starter_update",  # a new driver
    "race_status",  # a delayed start
    "odds_update",
    "race_status", "race_status", "interim_result",  # closed, interim (a dead heat for second)
    "race_status",  # a protest
    "race_status", "result_update",  # upheld: official, with other placings
]  # fmt: skip


def correct_the_result(race) -> None:
    from races.models import Starter
    from races.services import race_result_record

    runners = Starter.objects.filter(race=race, scratched=False).order_by("runner_number")
    placings = {starter.horse_id: n for n, starter in enumerate(runners, 1)}
    race_result_record(
        race_id=race.pk, placings=placings, declared_at=race.race_datetime, source="feed", correction=True
    )


@database_sync_to_async
def race_with_a_whole_day():
    """A race that lives every kind of update the server sends."""
    from races.models import Race
    from races.services import (
        Actor,
        odds_snapshot_record,
        race_result_record,
        race_status_change,
        starter_driver_change,
        starter_scratch,
    )
    from tests import factories

    race = factories.race_create(starter_count=5)
    *horses, scratched = race.starters.order_by("runner_number").values_list("horse_id", flat=True)
    start = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.UTC)
    feed = Actor("feed")

    def at(minutes: float) -> dt.datetime:
        return start + dt.timedelta(minutes=minutes)

    def odds(n: int, minutes: float) -> None:
        prices = [(horse, 2.0 + n + i) for i, horse in enumerate(horses)]
        odds_snapshot_record(race_id=race.pk, odds=prices, source="feed", taken_at=at(minutes))

    starter_scratch(race_id=race.pk, horse_id=scratched, at=at(0), actor=feed)
    odds(1, 1)
    starter_driver_change(race_id=race.pk, horse_id=horses[0], driver_name="Jo Harrow", at=at(2), actor=feed)
    race_status_change(
        race_id=race.pk, status="open", race_datetime=race.race_datetime + dt.timedelta(minutes=10),
        reason="Ambulance attending the previous race", at=at(3), actor=feed,
    )  # fmt: skip
    odds(2, 4)
    interim = {horses[0]: 1, horses[1]: 2, horses[2]: 2, horses[3]: None}  # a dead heat; a non-finisher
    race_result_record(race_id=race.pk, placings=interim, declared_at=at(15), source="feed", official=False)
    race_status_change(race_id=race.pk, status="protest", reason="Driver of 2 v driver of 1", at=at(16), actor=feed)
    official = {horses[1]: 1, horses[0]: 2, horses[2]: 2, horses[3]: None}
    race_result_record(race_id=race.pk, placings=official, declared_at=at(20), source="feed")
    return Race.objects.select_related("meeting").get(pk=race.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("stop_live_tasks")
async def test_every_message_type_the_server_sends_validates_against_its_asyncapi_payload(settings):
    from racing.asgi import application

    settings.SIMULATION_ENABLED = False  # the test stores every update itself
    race = await race_with_a_whole_day()
    client = WebsocketCommunicator(application, f"/ws/races/{race.pk}?last_seq=0&epoch={race.updates_epoch}")
    assert (await client.connect())[0]

    # initial_state, subscribed, then every update of the day
    received = [await client.receive_json_from(timeout=5) for _ in range(2 + len(WHOLE_DAY))]
    await client.send_json_to({"type": "ping"})
    received.append(await client.receive_json_from(timeout=5))
    await client.send_to(text_data="not JSON")
    received.append(await client.receive_json_from(timeout=5))
    await client.send_json_to({"type": "subscribe", "race_id": race.pk})
    received.append(await client.receive_json_from(timeout=5))
    await client.disconnect()

    assert [message["type"] for message in received] == [
        "initial_state", "subscribed", *WHOLE_DAY, "pong", "error", "subscribed",
    ]  # fmt: skip
    assert [message["seq"] for message in received[2 : 2 + len(WHOLE_DAY)]] == list(range(1, len(WHOLE_DAY) + 1))
    # And /ws/live: the same race followed, then not; a race that is not there.
    live = WebsocketCommunicator(application, "/ws/live")
    assert (await live.connect())[0]
    await live.send_json_to({"type": "subscribe", "race_id": race.pk, "last_seq": 0, "epoch": race.updates_epoch})
    on_live = [await live.receive_json_from(timeout=5) for _ in range(2 + len(WHOLE_DAY))]
    for message in (
        {"type": "unsubscribe", "race_id": race.pk},
        {"type": "subscribe", "race_id": 999_999},
        {"type": "subscribe", "meeting_id": race.meeting.code},
    ):
        await live.send_json_to(message)
        on_live.append(await live.receive_json_from(timeout=5))
    await database_sync_to_async(correct_the_result)(race)  # the meeting's board hears of it
    on_live.append(await live.receive_json_from(timeout=5))
    await live.disconnect()

    assert [message["type"] for message in on_live] == [
        "initial_state", "subscribed", *WHOLE_DAY, "unsubscribed", "error", "meeting_state", "race_summary",
    ]  # fmt: skip
    assert on_live[-3]["code"] == 4004 and on_live[-3]["race_id"] == 999_999
    for message in received + on_live:
        assert_valid(message)
    assert {message["type"] for message in received + on_live} == server_message_types()
