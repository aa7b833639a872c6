"""The contract: the shared spec's JSON Schemas and examples, and a validator for our messages."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

REPO_DIR = Path(__file__).resolve().parent.parent
SPEC_DIR = REPO_DIR.parent / "shared" / "spec"
SCHEMA_DIR = SPEC_DIR / "schemas"
SPEC_DOCUMENT = SPEC_DIR / "websocket-schema.md"

SCHEMA_NAMES = ("subscribe", "subscribed", "initial_state", "odds_update", "result_update")


@cache
def validator(message_type: str) -> Draft202012Validator:
    if not SCHEMA_DIR.is_dir():
        raise FileNotFoundError(f"The protocol's schemas are missing: expected them in {SCHEMA_DIR}")
    schema = json.loads((SCHEMA_DIR / f"{message_type}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def assert_valid(message: dict[str, Any]) -> dict[str, Any]:
    """Assert that a server message validates against the schema of its type; return it."""
    message_type = message.get("type")
    assert message_type in SCHEMA_NAMES, f"no schema for message type {message_type!r}: {message}"
    errors = sorted(validator(message_type).iter_errors(message), key=str)
    assert not errors, f"{message_type} fails its schema: " + "; ".join(e.message for e in errors)
    return message


def spec_example(language: str) -> str:
    """Return the spec's client example in ``python`` or ``js``, exactly as written there."""
    text = SPEC_DOCUMENT.read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one {language} example in {SPEC_DOCUMENT}"
    return blocks[0]
