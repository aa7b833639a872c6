"""
What the OpenAPI schema (/api/schema/, drf-spectacular) must say that the views' serializers
cannot: the one error body, which operations are public, every response a write can give, the
constraints the server enforces on a feed's body, and links between operations for a client (or a
stateful test) to follow. ``postprocess`` is registered in SPECTACULAR_SETTINGS; schemathesis
checks the result against the running server (make schemathesis, tests/test_openapi.py).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from races.converters import DATABASE_ID_MAX
from races.selectors import NEXT_TO_GO_LIMIT_MAX

# The API's one error body: a sentence for people, and for a request that does not follow the
# schema or does not fit the race, what is wrong field by field (racing/views.py builds it).
ERROR = inline_serializer("Error", {"detail": serializers.CharField()})

# Reads need no login and take no credentials.
PUBLIC: dict[str, Any] = {"auth": []}

# What any write can be answered, besides its own successes and refusals.
WRITE_ERRORS = {
    400: OpenApiResponse(ERROR, description="The body does not follow this schema: errors says where"),
    401: OpenApiResponse(ERROR, description="No credentials, or a token that does not exist"),
    403: OpenApiResponse(ERROR, description="A user that is neither a feed user nor staff"),
    413: OpenApiResponse(ERROR, description="The body is over the server's limit (2 MiB by default)"),
    415: OpenApiResponse(ERROR, description="A body that is not application/json"),
}
# What a write that reads no body can be answered: it never parses one, so never 400 or 415.
BODILESS_WRITE_ERRORS = {code: WRITE_ERRORS[code] for code in (401, 403, 413)}

ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": DATABASE_ID_MAX}
NO_NUL = "^[^\\u0000]*$"

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API answers has this shape.",
    "properties": {
        "detail": {"type": "string", "description": "what is wrong, for people"},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "for 400 and 422: each field's messages; a list's entries under their index",
        },
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "for a status move the race does not allow (409): the statuses it can move to",
        },
    },
    "required": ["detail"],
}

HORSE_ODDS_SCHEMA = {
    "type": "object",
    "properties": {
        "horse_id": {**ID_SCHEMA, "description": "a starter's horse_id (/api/races/{race_id}/)"},
        "odds": {
            "type": "number",
            "format": "double",
            "minimum": 1.01,
            "maximum": 99999.99,
            "multipleOf": 0.01,
            "description": "decimal win odds, at most 2 decimal places",
        },
    },
    "required": ["horse_id", "odds"],
}

RESULT_ENTRY_SCHEMA = {
    "description": "A runner that finished, with its placing (a dead heat shares one), or one that did not.",
    "oneOf": [
        {
            "type": "object",
            "title": "Finisher",
            "properties": {
                "horse_id": ID_SCHEMA,
                "placing": {"type": "integer", "minimum": 1, "maximum": 40, "description": "dead heats share one"},
                "finished": {"type": "boolean", "enum": [True]},
            },
            "required": ["horse_id", "placing", "finished"],
        },
        {
            "type": "object",
            "title": "NonFinisher",
            "properties": {
                "horse_id": ID_SCHEMA,
                "placing": {"type": "null"},
                "finished": {"type": "boolean", "enum": [False]},
            },
            "required": ["horse_id", "finished"],
        },
    ],
}


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add to the generated schema what only this module knows (see the module docstring)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components["HorseOdds"] = HORSE_ODDS_SCHEMA
    if "OddsSnapshot" in components:  # stored as JSON, always a list of a horse's odds
        components["OddsSnapshot"]["properties"]["odds"] = {
            "type": "array",
            "items": {"$ref": "#/components/schemas/HorseOdds"},
        }
    components.pop("ResultPost", None)  # the results body is written out below
    for name, schema in components.items():
        if name.startswith("ResultEntry") and "properties" in schema:
            components[name] = RESULT_ENTRY_SCHEMA
    if "DriverPost" in components:  # one of the two, not both, not neither
        components["DriverPost"]["oneOf"] = [{"required": ["driver_name"]}, {"required": ["driver_id"]}]
        # A name of spaces is no name (it is trimmed to nothing), nor is a NUL.
        components["DriverPost"]["properties"]["driver_name"].update(minLength=1, pattern=r"^[^\u0000]*\S[^\u0000]*$")
    for name, schema in components.items():
        if name.endswith("Post"):  # a request body: DRF's CharField refuses a NUL in any of its text
            for field in schema.get("properties", {}).values():
                if field.get("type") == "string" and not {"format", "enum", "pattern"} & field.keys():
                    field["pattern"] = NO_NUL
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            _constrain_parameters(operation)
            _constrain_body(path, method, operation)
            if not operation.get("security"):
                operation["security"] = []  # public: an explicit "no credentials", not the default
    _link(result.get("paths", {}))
    return result


def _constrain_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        schema = parameter.setdefault("schema", {})
        if parameter["name"] == "page":
            schema["minimum"] = 1
        elif parameter["name"] == "limit":
            schema.update(minimum=1, maximum=NEXT_TO_GO_LIMIT_MAX)
        elif parameter["name"] in ("venue", "meeting"):
            schema["pattern"] = NO_NUL
        elif parameter["name"] == "code" and parameter["in"] == "path":
            schema["pattern"] = "^[^/\\u0000]+$"


def _constrain_body(path: str, method: str, operation: dict[str, Any]) -> None:
    if method != "post":
        return
    for content in operation.get("requestBody", {}).get("content", {}).values():
        schema = content.get("schema", {})
        if path.endswith("/odds/") and schema.get("type") == "array":
            schema.update(minItems=1, maxItems=40)
    if path.endswith("/driver/"):
        operation["requestBody"]["required"] = True  # a driver change without a driver is refused
    if path.endswith("/results/"):
        operation["requestBody"]["content"] = {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": RESULT_ENTRY_SCHEMA,
                            "minItems": 1,
                            "maxItems": 40,
                            "description": "every starter of the race, finishers placed 1..k",
                        },
                        "official": {
                            "type": "boolean",
                            "default": True,
                            "description": "false for interim placings (the judges' first call, not yet official)",
                        },
                        "correction": {
                            "type": "boolean",
                            "default": False,
                            "description": "true to replace an official result (a protest upheld after it, a disqualification)",
                        },
                    },
                    "required": ["results"],
                }
            }
        }
        operation["requestBody"]["required"] = True


# operationId -> how a client gets there from another operation's answer.
RACE_LINKS = {
    "races_retrieve": "the race card",
    "races_odds_list": "its odds history",
    "races_odds_create": "push its odds",
    "races_odds_latest_retrieve": "its latest odds",
    "races_results_retrieve": "its result",
    "races_results_create": "post its placings",
    "races_status_retrieve": "its status and moves",
    "races_status_create": "move its status",
    "races_results_export_retrieve": "its result as a CSV or XLSX file",
    "races_odds_export_retrieve": "its odds history as a CSV or XLSX file",
}


def _link(paths: dict[str, Any]) -> None:
    """Links from the race list to each race's operations, and from each race operation to the
    others, so that a client (and schemathesis's stateful phase) can go from one to the next."""

    def links(race_id_expression: str) -> dict[str, Any]:
        return {
            operation_id: {
                "operationId": operation_id,
                "parameters": {"race_id": race_id_expression},
                "description": text,
            }
            for operation_id, text in RACE_LINKS.items()
        }

    for operations in paths.values():
        for operation in operations.values():
            operation_id = operation.get("operationId")
            responses = operation.get("responses", {})
            if operation_id == "races_list" and "200" in responses:
                responses["200"]["links"] = links("$response.body#/results/0/id")
            elif operation_id == "next_to_go_list" and "200" in responses:
                responses["200"]["links"] = links("$response.body#/0/id")
            elif operation_id == "meetings_retrieve" and "200" in responses:
                responses["200"]["links"] = links("$response.body#/races/0/id")
            elif operation_id in RACE_LINKS:
                for code in ("200", "201"):
                    if code in responses:
                        responses[code]["links"] = links("$request.path.race_id")
