"""docs/asyncapi.yaml describes the live protocol with the shared schemas, and stays in step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from tests.spec import SCHEMA_DIR, SCHEMA_NAMES

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def asyncapi() -> dict:
    return yaml.safe_load(DOCUMENT.read_text())


def resolve(document: dict, reference: str) -> dict:
    assert reference.startswith("#/"), reference
    node = document
    for part in reference[2:].split("/"):
        node = node[part]
    return node


def test_it_is_an_asyncapi_3_document_for_the_race_channel(asyncapi):
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["channels"]["race"]["address"] == "/ws/races/{race_id}"
    assert set(asyncapi["channels"]["race"]["parameters"]) == {"race_id"}


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_each_message_payload_is_the_shared_schema(asyncapi, name):
    shared = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    shared.pop("$schema")

    assert asyncapi["components"]["messages"][name]["payload"] == shared


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


def test_every_operation_sends_or_receives_messages_of_its_channel(asyncapi):
    channel_messages = asyncapi["channels"]["race"]["messages"]
    actions = {}
    for name, operation in asyncapi["operations"].items():
        assert operation["channel"] == {"$ref": "#/channels/race"}
        for message in operation["messages"]:
            assert message["$ref"].removeprefix("#/channels/race/messages/") in channel_messages
        actions[name] = operation["action"]

    assert sorted(actions.values()).count("receive") == 1  # only subscribe comes from clients
    assert set(channel_messages) == set(asyncapi["components"]["messages"])


@pytest.mark.parametrize("name", [*SCHEMA_NAMES, "error"])
def test_every_example_validates_against_its_payload(asyncapi, name):
    message = asyncapi["components"]["messages"][name]
    validator = Draft202012Validator(message["payload"], format_checker=FormatChecker())

    assert message["examples"]
    for example in message["examples"]:
        assert not list(validator.iter_errors(example["payload"]))


def test_the_error_message_documented_is_the_one_the_server_sends(asyncapi):
    from live.messages import ErrorMessage

    validator = Draft202012Validator(asyncapi["components"]["messages"]["error"]["payload"])

    assert not list(validator.iter_errors(ErrorMessage(message="invalid JSON").as_dict()))
