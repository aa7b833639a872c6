"""Race card files for the import's tests: the fixture day's card and small edits of it."""

from __future__ import annotations

import csv
import io

import tablib

from races.racecard.columns import NAMES
from races.racecard.formats import dataset_read
from races.racecard.services import ImportReport, racecard_import
from races.services import Actor
from tests.servers import REPO_DIR

EXAMPLE = REPO_DIR / "fixtures" / "racecard.csv"
OFFICE = Actor("admin")


def example_rows() -> list[dict[str, str]]:
    """Return the fixture day's card as rows (dicts by column)."""
    return list(csv.DictReader(io.StringIO(EXAMPLE.read_text(encoding="utf-8"))))


def csv_of(rows: list[dict[str, object]], *, columns: tuple[str, ...] = NAMES, line_end: str = "\r\n") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator=line_end, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def dataset_of(rows: list[dict[str, object]]) -> tablib.Dataset:
    return dataset_read(content=csv_of(rows), file_format="csv")


def race_rows(meeting_code: str = "NZ_20261204_ADD", race_number: int = 1) -> list[dict[str, str]]:
    return [r for r in example_rows() if r["meeting_code"] == meeting_code and r["race_number"] == str(race_number)]


def import_rows(rows: list[dict[str, object]], *, dry_run: bool = False) -> ImportReport:
    return racecard_import(dataset=dataset_of(rows), actor=OFFICE, dry_run=dry_run)
