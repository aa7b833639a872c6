"""A meeting's race card from the API: the file the race office imports, CSV or XLSX, public like
the meeting itself; an unknown meeting or format is the API's JSON error body."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.core.management import call_command

from races.racecard.formats import dataset_read
from tests.racecard import EXAMPLE
from tests.servers import FIXTURE

pytestmark = pytest.mark.django_db
ADDINGTON = "NZ_20261204_ADD"


@pytest.fixture
def fixture_day():
    call_command("loaddata", str(FIXTURE), verbosity=0)


def test_a_meetings_race_card_is_the_import_format_as_an_attachment(client, fixture_day):
    response = client.get(f"/api/meetings/{ADDINGTON}/racecard/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="racecard-{ADDINGTON}.csv"'
    lines = response.content.decode().splitlines()
    example = EXAMPLE.read_text().splitlines()
    assert lines[0] == example[0]  # the same columns as the example file
    assert lines[1:] == [line for line in example[1:] if line.startswith(ADDINGTON)]


def test_the_xlsx_reads_back_as_the_same_rows(client, fixture_day):
    csv_rows = dataset_read(content=client.get(f"/api/meetings/{ADDINGTON}/racecard/").content, file_format="csv")

    response = client.get(f"/api/meetings/{ADDINGTON}/racecard/?format=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active

    assert response["Content-Disposition"].endswith(f'racecard-{ADDINGTON}.xlsx"')
    assert sheet.max_row == len(csv_rows) + 1
    assert [cell.value for cell in sheet[1]] == list(csv_rows.headers)


def test_an_unknown_meeting_is_404_with_the_error_body(client):
    response = client.get("/api/meetings/NZ_20991231_NOP/racecard/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Meeting NZ_20991231_NOP does not exist."}


@pytest.mark.parametrize("query", ["?format=pdf", "?format=", "?format=csv&format=xlsx"])
def test_a_format_that_is_not_csv_or_xlsx_is_400(client, fixture_day, query):
    response = client.get(f"/api/meetings/{ADDINGTON}/racecard/{query}")

    assert response.status_code == 400 and "format" in response.json()["errors"]


def test_a_meetings_race_card_takes_two_queries_however_many_races_and_starters(
    client, fixture_day, django_assert_num_queries
):
    with django_assert_num_queries(2):
        client.get(f"/api/meetings/{ADDINGTON}/racecard/")
