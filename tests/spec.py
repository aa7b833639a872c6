"""The contract: the shared spec's JSON Schemas and examples, this server's AsyncAPI document, and
a validator for the messages the server sends."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

REPO_DIR = Path(__file__).resolve().parent.parent
SPEC_DIR = REPO_DIR.parent / "shared" / "spec"
SCHEMA_DIR = SPEC_DIR / "schemas"
SPEC_DOCUMENT = SPEC_DIR / "websocket-schema.md"
ASYNCAPI_DOCUMENT = REPO_DIR / "docs" / "asyncapi.yaml"

SCHEMA_NAMES = ("subscribe", "subscribed", "initial_state", "odds_update", "result_update")


@cache
def validator(message_type: str) -> Draft202012Validator:
    """Return the validator of the shared spec's schema for a message type."""
    if not SCHEMA_DIR.is_dir():
        raise FileNotFoundError(f"The protocol's schemas are missing: expected them in {SCHEMA_DIR}")
    schema = json.loads((SCHEMA_DIR / f"{message_type}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@cache
def asyncapi() -> dict[str, Any]:
    """Return docs/asyncapi.yaml, read once per test run."""
    return yaml.safe_load(ASYNCAPI_DOCUMENT.read_text())


@cache
def asyncapi_validator(message_type: str) -> Draft7Validator:
    """Return the validator of the AsyncAPI payload for a message type. AsyncAPI's Schema Object is
    JSON Schema draft-07 (and a little more), so draft-07 is how it is read."""
    payload = _inline_references(asyncapi()["components"]["messages"][message_type]["payload"])
    Draft7Validator.check_schema(payload)
    return Draft7Validator(payload, format_checker=Draft7Validator.FORMAT_CHECKER)


def _inline_references(schema: Any) -> Any:
    """Return ``schema`` with each of its ``$ref`` to the document's components replaced by what it
    names (a payload is validated on its own, apart from the document it is in)."""
    if isinstance(schema, list):
        return [_inline_references(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/"):
        target: Any = asyncapi()
        for part in reference[2:].split("/"):
            target = target[part]
        return _inline_references(target)
    return {key: _inline_references(value) for key, value in schema.items()}


@cache
def server_message_types() -> frozenset[str]:
    """Return the message types the AsyncAPI document says the server sends: those of its send
    operations and the replies to its receive operations."""
    names = set()
    for operation in asyncapi()["operations"].values():
        references = operation["messages"] if operation["action"] == "send" else []
        references += operation.get("reply", {}).get("messages", [])
        names.update(reference["$ref"].rpartition("/")[2] for reference in references)
    return frozenset(names)


def assert_valid(message: dict[str, Any]) -> dict[str, Any]:
    """Assert that a server message validates against the shared spec's schema of its type, if
    there is one, and against its AsyncAPI payload (this server's additions included); return it."""
    message_type = message.get("type")
    assert message_type in server_message_types(), (
        f"docs/asyncapi.yaml has no message type {message_type!r} that the server sends: {message}"
    )
    checks = [("docs/asyncapi.yaml", asyncapi_validator(message_type))]
    if message_type in SCHEMA_NAMES:
        checks.insert(0, ("the shared schema", validator(message_type)))
    for source, schema_validator in checks:
        errors = sorted(schema_validator.iter_errors(message), key=str)
        assert not errors, f"{message_type} fails {source}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(message)'}: {e.message}" for e in errors
        )
    return message


def spec_example(language: str) -> str:
    """Return the spec's client example in ``python`` or ``js``, exactly as written there."""
    text = SPEC_DOCUMENT.read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one {language} example in {SPEC_DOCUMENT}"
    return blocks[0]
