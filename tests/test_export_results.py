"""A race's result as a file (GET /api/races/{id}/results/export/): dead heats as they were
declared, then those that did not finish, then the scratched, in CSV or XLSX."""

from __future__ import annotations

import pytest
from rest_framework import status

from races.exports.datasets import export_filename
from races.exports.selectors import ExportRace
from tests import factories
from tests.exports import csv_rows, race_with_result, xlsx_rows

pytestmark = pytest.mark.django_db

COLUMNS = [
    "meeting_code",
    "race_number",
    "race_name",
    "runner_number",
    "horse",
    "driver",
    "trainer",
    "placing",
    "dead_heat",
    "outcome",
    "result_status",
    "declared_at",
]


def url(race_id: int, file_format: str | None = None) -> str:
    query = f"?format={file_format}" if file_format else ""
    return f"/api/races/{race_id}/results/export/{query}"


def test_a_dead_heat_is_exported_as_declared_two_firsts_then_third(client):
    race = race_with_result([3, 1, None, 1], scratched=1)

    response = client.get(url(race.pk, "csv"))

    assert response.status_code == status.HTTP_200_OK
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = csv_rows(response)
    assert list(rows[0]) == COLUMNS
    assert [(r["runner_number"], r["placing"], r["dead_heat"], r["outcome"]) for r in rows] == [
        ("2", "1", "yes", "placed"),
        ("4", "1", "yes", "placed"),
        ("1", "3", "no", "placed"),
        ("3", "", "no", "did not finish"),
        ("5", "", "no", "scratched"),
    ]


def test_each_row_names_the_race_its_starter_and_the_results_status(client):
    race = race_with_result([1, 2], official=False)
    starter = race.starters.select_related("horse", "driver", "trainer").get(runner_number=1)

    first = csv_rows(client.get(url(race.pk)))[0]  # CSV when no format is given

    assert first == {
        "meeting_code": race.meeting.code,
        "race_number": str(race.race_number),
        "race_name": race.name,
        "runner_number": "1",
        "horse": starter.horse.name,
        "driver": starter.driver.name,
        "trainer": starter.trainer.name,
        "placing": "1",
        "dead_heat": "no",
        "outcome": "placed",
        "result_status": "interim",
        "declared_at": "2026-12-04T19:40:05+13:00",  # in the venue's time, with its offset
    }


def test_the_csv_starts_with_a_byte_order_mark_for_excel_and_ends_lines_as_rfc_4180_says(client):
    race = race_with_result([1, 2], names=["Kōtare", "Māia"])

    content = client.get(url(race.pk, "csv")).content

    assert content.startswith(b"\xef\xbb\xbfmeeting_code,") and b"\r\n" in content
    assert "Kōtare" in content.decode("utf-8-sig")


def test_the_xlsx_holds_numbers_as_numbers_and_the_same_rows(client):
    race = race_with_result([1, 1, 3, None], scratched=1)

    response = client.get(url(race.pk, "xlsx"))

    assert response.status_code == status.HTTP_200_OK
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    rows = xlsx_rows(response)
    assert list(rows[0]) == COLUMNS
    assert [(r["runner_number"], r["placing"], r["dead_heat"], r["outcome"]) for r in rows] == [
        (1, 1, "yes", "placed"),
        (2, 1, "yes", "placed"),
        (3, 3, "no", "placed"),
        (4, None, "no", "did not finish"),
        (5, None, "no", "scratched"),
    ]
    assert rows[0]["race_number"] == race.race_number and rows[0]["result_status"] == "official"
    assert [str(value) for value in rows[0].values()] == [
        value for value in csv_rows(client.get(url(race.pk, "csv")))[0].values()
    ]


def test_the_file_is_an_attachment_named_after_the_meeting_and_race(client):
    race = race_with_result([1, 2])

    csv_response, xlsx_response = client.get(url(race.pk, "csv")), client.get(url(race.pk, "xlsx"))

    name = f"{race.meeting.code}_R{race.race_number}_results"
    assert csv_response["Content-Disposition"] == f'attachment; filename="{name}.csv"'
    assert xlsx_response["Content-Disposition"] == f'attachment; filename="{name}.xlsx"'


def test_a_meeting_code_that_is_no_file_name_is_made_one():
    race = ExportRace(id=1, meeting_code='NZ/2026 "ADD"', race_number=3, name="", status="official", declared_at=None)

    assert export_filename(races=[race], kind="results", extension="csv") == "NZ_2026__ADD__R3_results.csv"


def test_a_race_without_a_result_is_404_with_the_error_body(client):
    race = factories.race_at_status("closed")

    response = client.get(url(race.pk, "xlsx"))

    assert response.status_code == status.HTTP_404_NOT_FOUND
    assert response.json() == {"detail": f"Race {race.pk} has no result declared yet."}


def test_an_unknown_race_is_404_with_the_error_body(client):
    response = client.get(url(999_999, "csv"))

    assert response.status_code == status.HTTP_404_NOT_FOUND
    assert response.json() == {"detail": "Race 999999 does not exist."}


@pytest.mark.parametrize("query", ["?format=pdf", "?format=CSV", "?format=", "?format=csv&format=xlsx"])
def test_a_format_that_is_not_csv_or_xlsx_is_400_with_the_error_body(client, query):
    race = race_with_result([1, 2])

    response = client.get(f"/api/races/{race.pk}/results/export/{query}")

    assert response.status_code == status.HTTP_400_BAD_REQUEST
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert "format" in body["errors"] and body["detail"].startswith("format: ")


def test_an_unknown_format_is_refused_before_the_race_is_looked_up(client):
    response = client.get(url(999_999, "pdf"))

    assert response.status_code == status.HTTP_400_BAD_REQUEST


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_export_reads_the_same_two_queries_for_a_small_field_and_a_full_one(
    client, django_assert_num_queries, file_format
):
    small, full = race_with_result([1, 2]), race_with_result([*range(1, 14), None], scratched=4)

    for race in (small, full):
        with django_assert_num_queries(2):  # the race, then its starters with their names
            assert client.get(url(race.pk, file_format)).status_code == status.HTTP_200_OK


def test_the_accept_header_changes_nothing_the_format_names_the_file(client):
    race = race_with_result([1, 2])

    file = client.get(url(race.pk, "xlsx"), HTTP_ACCEPT="text/html")
    refusal = client.get(url(race.pk, "ods"), HTTP_ACCEPT="text/csv")

    assert file.status_code == status.HTTP_200_OK and file["Content-Type"].startswith("application/vnd.openxml")
    assert refusal.status_code == status.HTTP_400_BAD_REQUEST and refusal["Content-Type"] == "application/json"
