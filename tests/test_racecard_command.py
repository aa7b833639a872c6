"""manage.py import_racecard: a summary of what the file did, each bad row and why, and a non-zero
exit (nothing changed) when the file is refused."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from races.models import Meeting, Starter
from tests.racecard import EXAMPLE, csv_of, race_rows

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_racecard", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_example_file_is_imported_then_unchanged():
    out, _ = run(str(EXAMPLE))
    again, _ = run(str(EXAMPLE))

    assert out.splitlines()[-1] == "203 created, 0 updated, 0 unchanged, 0 removed, 0 refused"
    assert again.splitlines() == ["0 created, 0 updated, 203 unchanged, 0 removed, 0 refused"]
    assert Starter.objects.count() == 203


def test_a_dry_run_saves_nothing():
    out, _ = run(str(EXAMPLE), "--dry-run")

    assert (
        out.splitlines()[-1] == "203 created, 0 updated, 0 unchanged, 0 removed, 0 refused (a dry run: nothing saved)"
    )
    assert not Meeting.objects.exists()


def test_a_refused_file_prints_each_bad_row_and_exits_non_zero(tmp_path):
    rows = race_rows()
    rows[1]["gait"] = "gallop"
    rows[2]["runner_number"] = rows[3]["runner_number"]
    path = tmp_path / "card.csv"
    path.write_bytes(csv_of(rows))
    err = io.StringIO()

    with pytest.raises(CommandError, match=r"card.csv: refused \(2 bad row\(s\)\), nothing changed"):
        call_command("import_racecard", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        "row 3, gait: unknown gait 'gallop': use one of pace, trot",
        f"row 5, runner_number: runner number {rows[3]['runner_number']} is row 4's too, in race 1 of NZ_20261204_ADD",
    ]
    assert not Meeting.objects.exists()


def test_a_file_that_cannot_be_read_is_refused(tmp_path):
    path = tmp_path / "card.xlsx"
    path.write_bytes(b"meeting_code,date\n")

    with pytest.raises(CommandError, match="card.xlsx: refused, nothing changed: the file is not an XLSX workbook"):
        run(str(path))
    with pytest.raises(CommandError, match="is not a .csv, .xlsx or .json file"):
        run(str(tmp_path / "card.txt"))


def test_the_command_exits_non_zero_from_the_shell(tmp_path):
    from django.core.management import ManagementUtility

    path = tmp_path / "card.csv"
    path.write_bytes(b"horse\r\nNo Name\r\n")
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "import_racecard", str(path)]).execute()

    assert exited.value.code == 1
