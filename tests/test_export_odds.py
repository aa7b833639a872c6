"""A race's odds history ("flucs") as a file (GET /api/races/{id}/odds/export/): a row per runner
per snapshot, oldest first, in CSV or XLSX."""

from __future__ import annotations

import pytest
from rest_framework import status

from races.models import Horse, Source, Starter
from races.services import Actor, odds_snapshot_record, starter_scratch
from tests import factories
from tests.exports import DECLARED_AT, csv_rows, horse_ids, race_with_odds, xlsx_rows

pytestmark = pytest.mark.django_db

COLUMNS = ["meeting_code", "race_number", "snapshot", "taken_at", "source", "runner_number", "horse", "odds"]


def url(race_id: int, file_format: str | None = None) -> str:
    query = f"?format={file_format}" if file_format else ""
    return f"/api/races/{race_id}/odds/export/{query}"


def test_every_snapshot_gives_a_row_per_runner_oldest_first(client):
    race = race_with_odds([[2.5, 3.0, 8.0], [2.2, 3.4, 9.5]])
    names = dict(Horse.objects.filter(starts__race=race).values_list("starts__runner_number", "name"))

    response = client.get(url(race.pk, "csv"))

    assert response.status_code == status.HTTP_200_OK
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = csv_rows(response)
    assert list(rows[0]) == COLUMNS
    assert [(r["snapshot"], r["taken_at"], r["runner_number"], r["horse"], r["odds"]) for r in rows] == [
        ("1", "2026-12-04T19:40:05+13:00", "1", names[1], "2.5"),
        ("1", "2026-12-04T19:40:05+13:00", "2", names[2], "3.0"),
        ("1", "2026-12-04T19:40:05+13:00", "3", names[3], "8.0"),
        ("2", "2026-12-04T19:41:05+13:00", "1", names[1], "2.2"),
        ("2", "2026-12-04T19:41:05+13:00", "2", names[2], "3.4"),
        ("2", "2026-12-04T19:41:05+13:00", "3", names[3], "9.5"),
    ]
    assert {(r["meeting_code"], r["race_number"], r["source"]) for r in rows} == {
        (race.meeting.code, str(race.race_number), "feed")
    }


def test_the_xlsx_holds_the_odds_as_numbers(client):
    race = race_with_odds([[2.5, 3.0], [1.85, 4.2]])

    response = client.get(url(race.pk, "xlsx"))

    assert response.status_code == status.HTTP_200_OK
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    rows = xlsx_rows(response)
    assert list(rows[0]) == COLUMNS
    assert [(r["snapshot"], r["runner_number"], r["odds"]) for r in rows] == [
        (1, 1, 2.5),
        (1, 2, 3.0),
        (2, 1, 1.85),
        (2, 2, 4.2),
    ]
    assert (
        response["Content-Disposition"] == f'attachment; filename="{race.meeting.code}_R{race.race_number}_odds.xlsx"'
    )


def test_a_runner_scratched_after_the_market_opened_keeps_its_earlier_prices(client):
    race = race_with_odds([[2.5, 3.0, 8.0]])  # its first odds opened its market

    first, second, third = horse_ids(race)
    starter_scratch(race_id=race.pk, horse_id=third, at=DECLARED_AT, actor=Actor(Source.ADMIN))
    odds_snapshot_record(race_id=race.pk, odds=[(first, 1.9), (second, 2.1)], source="feed", taken_at=DECLARED_AT)

    rows = csv_rows(client.get(url(race.pk)))

    assert [(r["snapshot"], r["runner_number"], r["odds"]) for r in rows] == [
        ("1", "1", "2.5"), ("1", "2", "3.0"), ("1", "3", "8.0"), ("2", "1", "1.9"), ("2", "2", "2.1"),
    ]  # fmt: skip


def test_a_horse_no_longer_among_the_starters_is_named_without_a_number(client):
    race = race_with_odds([[2.5, 3.0]])
    gone = Starter.objects.get(race=race, runner_number=2)
    gone.delete()

    rows = csv_rows(client.get(url(race.pk)))

    assert (rows[1]["runner_number"], rows[1]["horse"]) == ("", gone.horse.name)


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_a_race_without_odds_gives_a_file_of_its_header_row_only(client, file_format):
    race = factories.race_create(starter_count=4)

    response = client.get(url(race.pk, file_format))

    assert response.status_code == status.HTTP_200_OK
    rows = csv_rows(response) if file_format == "csv" else xlsx_rows(response)
    assert rows == []
    if file_format == "csv":
        assert response.content.decode("utf-8-sig").splitlines() == [",".join(COLUMNS)]


def test_an_unknown_race_is_404_and_a_bad_format_400_with_the_error_body(client):
    race = race_with_odds([[2.5, 3.0]])

    unknown = client.get(url(999_999, "csv"))
    bad = client.get(url(race.pk, "json"))

    assert unknown.status_code == status.HTTP_404_NOT_FOUND
    assert unknown.json() == {"detail": "Race 999999 does not exist."}
    assert bad.status_code == status.HTTP_400_BAD_REQUEST
    assert bad.json()["errors"] == {"format": ["must be one of csv, xlsx."]}


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_export_reads_the_same_three_queries_however_many_snapshots_and_runners(
    client, django_assert_num_queries, file_format
):
    small = race_with_odds([[2.5, 3.0]])
    large = race_with_odds([[2.0 + runner + snapshot / 10 for runner in range(14)] for snapshot in range(30)])

    for race in (small, large):
        with django_assert_num_queries(3):  # the race, its starters, its snapshots
            assert client.get(url(race.pk, file_format)).status_code == status.HTTP_200_OK
