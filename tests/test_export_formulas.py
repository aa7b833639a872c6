"""Names that a spreadsheet would run as formulas (=, +, -, @) are exported as text, escaped with
an apostrophe, in CSV and XLSX alike; numbers stay numbers."""

from __future__ import annotations

import pytest
from django.test import override_settings

from races.models import Driver, Trainer
from races.spreadsheets import spreadsheet_safe
from tests.exports import csv_rows, race_with_odds, race_with_result, xlsx_cells, xlsx_rows

pytestmark = pytest.mark.django_db

HOSTILE = ['=HYPERLINK("http://x")', "@SUM(1)", "+1+1", "-2+3", "==1+1", "\t=1", "=cmd|' /C calc'!A0"]
ESCAPED = ["'" + name for name in HOSTILE]


@pytest.mark.parametrize(
    "value, written",
    [
        *zip(HOSTILE, ESCAPED, strict=True),
        ("Kōtare", "Kōtare"),
        ("A=B", "A=B"),  # only a formula's first character starts one
        ("", ""),
        ("bell\x07", "bell\N{REPLACEMENT CHARACTER}"),  # no XLSX cell holds a control character
        (-3, -3),
        (2.5, 2.5),
        (None, None),
    ],
)
def test_a_cell_is_escaped_only_if_it_is_text_a_spreadsheet_would_run(value, written):
    assert spreadsheet_safe(value) == written


def test_hostile_horse_driver_and_trainer_names_are_escaped_in_the_results_csv(client):
    race = race_with_result([1, 2, 3, 4, 5, 6, 7], names=HOSTILE)
    Driver.objects.filter(drives__race=race, drives__runner_number=1).update(name="@SUM(1)")
    Trainer.objects.filter(starters__race=race, starters__runner_number=1).update(name="-1")

    rows = csv_rows(client.get(f"/api/races/{race.pk}/results/export/?format=csv"))

    assert [row["horse"] for row in rows] == ESCAPED
    assert (rows[0]["driver"], rows[0]["trainer"]) == ("'@SUM(1)", "'-1")


def test_hostile_names_are_text_not_formulas_in_the_results_xlsx_and_numbers_stay_numbers(client):
    race = race_with_result([1, 2, 3, 4, 5, 6, 7], names=HOSTILE)

    response = client.get(f"/api/races/{race.pk}/results/export/?format=xlsx")

    cells = xlsx_cells(response)
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    rows = xlsx_rows(response)
    assert [row["horse"] for row in rows] == ESCAPED
    assert [row["placing"] for row in rows] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_hostile_names_are_escaped_in_the_odds_history(client, file_format):
    race = race_with_odds([[2.5] * 7])
    for starter, name in zip(race.starters.order_by("runner_number").select_related("horse"), HOSTILE, strict=True):
        starter.horse.name = name
        starter.horse.save()

    response = client.get(f"/api/races/{race.pk}/odds/export/?format={file_format}")

    rows = csv_rows(response) if file_format == "csv" else xlsx_rows(response)
    assert [row["horse"] for row in rows] == ESCAPED
    if file_format == "xlsx":
        assert not [cell.coordinate for cell in xlsx_cells(response) if cell.data_type == "f"]
        assert [row["odds"] for row in rows] == [2.5] * 7


@override_settings(IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT=True)
def test_the_librarys_own_escaping_setting_changes_nothing_in_these_files(client):
    # django-import-export's setting strips a leading "=" and turns every cell into text ("None"
    # for an empty one): these files are written without it, whatever it says.
    race = race_with_result([1, None], names=HOSTILE[:2])

    rows = xlsx_rows(client.get(f"/api/races/{race.pk}/results/export/?format=xlsx"))

    assert [(row["horse"], row["placing"]) for row in rows] == [(ESCAPED[0], 1), (ESCAPED[1], None)]
