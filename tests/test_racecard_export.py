"""A meeting's race card, written in the import's format: the example file in fixtures/ is the
fixture day's card as written now (so it cannot go stale), XLSX reads back as it was written, and
text a spreadsheet would run as a formula is escaped, numbers left as numbers."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from races.models import Horse
from races.racecard.formats import dataset_read, dataset_write
from races.racecard.selectors import racecard_dataset
from races.racecard.services import racecard_import
from tests.racecard import EXAMPLE, OFFICE, import_rows, race_rows
from tests.servers import FIXTURE

pytestmark = pytest.mark.django_db
CODES = ["NZ_20261204_ADD", "NZ_20261205_AUK"]


def test_the_example_file_is_the_fixture_days_card_as_exported_now(tmp_path):
    call_command("loaddata", str(FIXTURE), verbosity=0)
    written = tmp_path / "racecard.csv"

    call_command("export_racecard", *CODES, "-o", str(written))

    assert written.read_bytes() == EXAMPLE.read_bytes(), (
        "fixtures/racecard.csv is stale: manage.py export_racecard "
        "NZ_20261204_ADD NZ_20261205_AUK -o fixtures/racecard.csv"
    )


def test_an_xlsx_card_imports_back_unchanged(tmp_path):
    call_command("loaddata", str(FIXTURE), verbosity=0)
    written = tmp_path / "racecard.xlsx"
    call_command("export_racecard", *CODES, "--format", "xlsx", "-o", str(written))

    report = racecard_import(
        dataset=dataset_read(content=written.read_bytes(), file_format="xlsx"), actor=OFFICE, dry_run=False
    )

    assert report.summary() == "0 created, 0 updated, 203 unchanged, 0 removed, 0 refused"


def test_text_a_spreadsheet_would_run_is_escaped_and_numbers_stay_numbers():
    rows = race_rows()
    rows[0]["horse"] = '=HYPERLINK("http://x")'
    rows[1]["horse"], rows[2]["horse"], rows[3]["horse"] = "+Plus", "-Minus", "@At"
    import_rows(rows)
    dataset = racecard_dataset(meeting_codes=["NZ_20261204_ADD"])

    sheet = openpyxl.load_workbook(io.BytesIO(dataset_write(dataset, file_format="xlsx"))).active
    csv_text = dataset_write(dataset, file_format="csv").decode()

    horses = [row[14] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert horses[:4] == ['\'=HYPERLINK("http://x")', "'+Plus", "'-Minus", "'@At"]
    assert [type(cell) for cell in next(sheet.iter_rows(min_row=2, values_only=True))[3:6]] == [int, str, int]
    assert "\n" + "NZ_20261204_ADD" in csv_text and ',"\'=HYPERLINK(""http://x"")",' in csv_text
    # Read back, the apostrophe comes off: the same card again changes nothing.
    again = racecard_import(
        dataset=dataset_read(content=csv_text.encode(), file_format="csv"), actor=OFFICE, dry_run=False
    )
    assert again.unchanged == len(rows) and Horse.objects.filter(name="-Minus").exists()


def test_an_unknown_meeting_is_named():
    with pytest.raises(CommandError, match="no meeting NZ_19990101_XXX"):
        call_command("export_racecard", "NZ_19990101_XXX")
