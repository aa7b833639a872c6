"""The schema (/api/schema/) states the export endpoints exactly: the format parameter's values,
the two file media types, and the API's error body for a refusal."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE = {"type": "string", "format": "binary"}
ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


@pytest.fixture(scope="module")
def paths(django_db_blocker):
    with django_db_blocker.unblock():
        return json.loads(Client().get("/api/schema/?format=json").content)["paths"]


@pytest.mark.parametrize("path", ["/api/races/{race_id}/results/export/", "/api/races/{race_id}/odds/export/"])
def test_an_export_is_a_public_read_of_a_csv_or_xlsx_file_refused_in_the_error_body(paths, path):
    operation = paths[path]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert set(paths[path]) == {"get"} and operation["security"] == []
    assert parameters["format"]["in"] == "query"
    assert parameters["format"]["schema"] == {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}
    assert parameters["race_id"]["schema"]["format"] == "int64" and parameters["race_id"]["required"]
    assert set(operation["responses"]) == {"200", "400", "404"}
    # XLSX first, for a generated client (docs/api.md); text/csv read as a file too.
    assert list(operation["responses"]["200"]["content"].items()) == [
        (XLSX, {"schema": FILE}),
        ("text/csv", {"schema": FILE}),
    ]
    assert operation["responses"]["400"]["content"] == operation["responses"]["404"]["content"] == ERROR
