"""Bad race card files: each is refused with a message that says why, and nothing changes. A CSV
as Excel on Windows writes it (a byte order mark, CRLF line ends) is not bad: it is taken."""

from __future__ import annotations

import io
import json
import zipfile

import openpyxl
import pytest

from races.models import Horse, Meeting
from races.racecard.columns import NAMES
from races.racecard.formats import MAX_FILE_BYTES, MAX_UNPACKED_BYTES, FileRefused, dataset_read
from races.racecard.services import racecard_import
from tests.racecard import OFFICE, csv_of, race_rows

pytestmark = pytest.mark.django_db


def refusal(content: bytes, file_format: str = "csv") -> list[str]:
    """Return why the file is refused: by the reader, or row by row by the import."""
    try:
        dataset = dataset_read(content=content, file_format=file_format)
    except FileRefused as refused:
        return [str(refused)]
    report = racecard_import(dataset=dataset, actor=OFFICE, dry_run=False)
    assert report.errors, "the file was taken"
    return [str(error) for error in report.errors]


@pytest.fixture(autouse=True)
def nothing_changes():
    yield
    assert not Meeting.objects.exists() and not Horse.objects.exists()


def test_missing_columns_are_each_named():
    columns = tuple(name for name in NAMES if name not in ("gait", "driver"))

    assert refusal(csv_of(race_rows(), columns=columns)) == [
        "row 1, gait: missing column",
        "row 1, driver: missing column",
    ]


def test_an_unknown_column_is_refused_rather_than_ignored():
    rows = race_rows()
    content = csv_of(rows).replace(b"weather", b"wether", 1)

    problems = refusal(content)

    assert "row 1, weather: missing column" in problems
    assert any(problem.startswith("row 1, wether: unknown column") for problem in problems)


def test_an_unknown_gait_names_the_row_and_the_gaits():
    rows = race_rows()
    for row in rows:
        row["gait"] = "gallop"

    problems = refusal(csv_of(rows))

    assert problems[0] == "row 2, gait: unknown gait 'gallop': use one of pace, trot"
    assert len(problems) == len(rows)


def test_duplicate_runner_numbers_in_a_race_name_both_rows():
    rows = race_rows()
    rows[3]["runner_number"] = rows[1]["runner_number"]

    assert refusal(csv_of(rows)) == [
        f"row 5, runner_number: runner number {rows[1]['runner_number']} is row 3's too, in race 1 of NZ_20261204_ADD"
    ]


def test_a_race_described_differently_on_two_rows_is_refused():
    rows = race_rows()
    rows[2]["distance_m"] = "1980"

    assert refusal(csv_of(rows)) == ["row 4, distance_m: differs from row 2's for race 1 of NZ_20261204_ADD"]


def test_a_file_above_the_limit_is_refused_before_it_is_parsed():
    content = csv_of(race_rows()) + b"x" * (10 * 1024 * 1024)

    assert refusal(content) == ["the file is 10.0 MB: a race card file may be at most 5 MB"]
    assert len(content) > MAX_FILE_BYTES


def test_a_file_above_the_limit_on_disk_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from races.racecard import formats

    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    monkeypatch.setattr(formats, "dataset_read", lambda **kwargs: pytest.fail("the file was read"))

    with pytest.raises(FileRefused, match="may be at most 5 MB"):
        formats.dataset_open(path)


def test_a_csv_with_a_byte_order_mark_and_windows_line_ends_is_taken():
    rows = race_rows()
    rows[0]["horse"] = "Māori Girl"
    content = "\ufeff".encode() + csv_of(rows, line_end="\r\n")

    report = racecard_import(dataset=dataset_read(content=content, file_format="csv"), actor=OFFICE, dry_run=False)

    assert (report.created, report.errors) == (len(rows), [])
    assert Horse.objects.filter(name="Māori Girl").exists()
    Meeting.objects.all().delete(), Horse.objects.all().delete()  # for nothing_changes


def test_a_file_in_another_encoding_is_refused_with_how_to_save_it():
    rows = race_rows()
    rows[0]["horse"] = "Mañana Express"
    content = csv_of(rows).decode().encode("latin-1")

    assert refusal(content) == [
        'the file is not UTF-8 text (byte 0xF1 on line 2): save it as UTF-8 (in Excel, "CSV UTF-8") and import it again'
    ]


def test_an_xlsx_that_is_not_one_is_refused():
    assert refusal(csv_of(race_rows()), "xlsx") == [
        "the file is not an XLSX workbook (BadZipFile): save it from Excel as .xlsx"
    ]


def test_an_empty_workbook_is_refused():
    out = io.BytesIO()
    openpyxl.Workbook().save(out)

    problems = refusal(out.getvalue(), "xlsx")

    assert problems == ["the workbook's first sheet is empty: it needs the header and a row per starter"]


def test_json_that_is_not_a_list_of_rows_is_refused():
    assert refusal(b'{"meeting_code": "NZ"}', "json") == [
        "a JSON race card is a list of objects, one a starter, keyed by column name"
    ]
    assert refusal(b"[{", "json")[0].startswith("the file is not JSON: ")


def test_a_workbook_that_would_unpack_past_the_limit_is_refused_before_it_is_unpacked():
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as workbook:
        workbook.writestr("xl/worksheets/sheet1.xml", b"<c/>" * (MAX_UNPACKED_BYTES // 4 + 1))

    assert len(bomb.getvalue()) < MAX_FILE_BYTES
    assert refusal(bomb.getvalue(), "xlsx") == [
        "the workbook unpacks to 50 MB: a race card workbook may unpack to at most 50 MB"
    ]


def test_json_nested_too_deep_or_with_a_list_for_a_value_is_refused():
    assert refusal(b"[" * 100_000, "json") == [
        "the file nests lists or objects too deep: a race card is a list of flat objects"
    ]
    row = dict(race_rows()[0], horse=["Doctor", "Magic"])
    assert refusal(json.dumps([race_rows()[1], row]).encode(), "json") == [
        "row 3, horse: a value, not a list or an object"
    ]


def test_a_row_with_more_cells_than_the_header_is_refused():
    content = csv_of(race_rows()) + b"a,b,c," + b",".join([b"x"] * 20) + b"\r\n"

    assert refusal(content)[0].startswith("row ")
    assert "cells, the header 17" in refusal(content)[0]


def test_an_empty_file_is_refused():
    assert refusal(b"") == ["the file is empty"]
    assert refusal(csv_of([])) == ["file: the file has no starters: one row per starter under the header"]


def test_bad_values_each_say_what_is_wanted():
    rows = race_rows()[:1]
    rows[0].update(date="4/12/2026", race_number="0", barrier="two", start_time="6pm", horse="")

    assert refusal(csv_of(rows)) == [
        "row 2, date: '4/12/2026' is not a date as YYYY-MM-DD",
        "row 2, race_number: 0 is less than 1",
        "row 2, start_time: '6pm' is not a date and time as 2026-12-04T18:05:00+13:00",
        "row 2, barrier: 'two' is not a whole number",
        "row 2, horse: is empty: it needs a value",
    ]


def test_json_rows_are_read_like_csv_rows():
    rows = race_rows()
    content = json.dumps(rows).encode()

    report = racecard_import(dataset=dataset_read(content=content, file_format="json"), actor=OFFICE, dry_run=True)

    assert (report.created, report.errors) == (len(rows), [])


def test_a_workbook_with_empty_unnamed_columns_is_taken_and_a_value_under_no_header_is_not():
    rows = race_rows()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([*NAMES, None])
    for row in rows:
        sheet.append([*(row[name] for name in NAMES), None])
    sheet.cell(row=3, column=len(NAMES) + 1, value="stray note")
    out = io.BytesIO()
    book.save(out)

    assert refusal(out.getvalue(), "xlsx") == [
        "row 3, (no name): a value in a column with no header: name the column or clear it"
    ]
