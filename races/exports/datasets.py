"""
Build the export files from the selectors' rows: pure, no queries. A django-import-export resource
per file says its columns; the dataset it exports is written as CSV or XLSX by tablib.

Formulas: every cell goes through races.spreadsheets.spreadsheet_safe (text that would start a
formula gets a leading apostrophe; numbers stay numbers), as the race card's cells do.
django-import-export's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT
is not used: it only strips a leading ``=`` (``==1+1`` stays a formula, ``+``, ``-`` and ``@``
pass), changes the name instead of escaping it, and turns every cell, numbers and empty ones
included, into text ("None"). So the files are written by tablib directly, not through the
library's formats, whatever that setting says.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import tablib
from django.utils import timezone
from import_export import fields, resources, widgets

from races.exports.selectors import ExportRace, OddsRow, ResultRow
from races.spreadsheets import spreadsheet_safe

# The file formats the exports come in, by the name a request gives.
CSV, XLSX = "csv", "xlsx"
FORMATS = (CSV, XLSX)
CONTENT_TYPES = {
    CSV: "text/csv",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def local_time(value: dt.datetime | None) -> str | None:
    """Return a moment as ISO 8601 in the server's time zone (the venue's), to the second."""
    return None if value is None else timezone.localtime(value).isoformat(timespec="seconds")


class YesNoWidget(widgets.Widget):
    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "yes" if value else "no"


class LocalTimeWidget(widgets.Widget):
    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str | None:
        return local_time(value)


def _text(attribute: str, column: str) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=column, widget=widgets.CharWidget())


def _number(attribute: str, column: str, widget: type[widgets.NumberWidget] = widgets.IntegerWidget) -> fields.Field:
    # Not coerced to text: a number stays a number in the XLSX (and is not localised: "1,234").
    return fields.Field(attribute=attribute, column_name=column, widget=widget(coerce_to_string=False))


class SpreadsheetSafeResource(resources.Resource):
    """A resource whose every cell is made spreadsheet safe as it is exported."""

    def export_field(self, field: fields.Field, instance: Any, **kwargs: Any) -> Any:
        return spreadsheet_safe(super().export_field(field, instance, **kwargs))


class ResultResource(SpreadsheetSafeResource):
    """A race's result: one row per starter, finishers by placing, dead heats sharing one."""

    meeting_code = _text("race__meeting_code", "meeting_code")
    race_number = _number("race__race_number", "race_number")
    race_name = _text("race__name", "race_name")
    runner_number = _number("runner_number", "runner_number")
    horse = _text("horse", "horse")
    driver = _text("driver", "driver")
    trainer = _text("trainer", "trainer")
    placing = _number("placing", "placing")
    dead_heat = fields.Field(attribute="dead_heat", column_name="dead_heat", widget=YesNoWidget())
    outcome = _text("outcome", "outcome")
    result_status = _text("race__status", "result_status")
    declared_at = fields.Field(attribute="race__declared_at", column_name="declared_at", widget=LocalTimeWidget())


class OddsResource(SpreadsheetSafeResource):
    """A race's odds history (flucs): one row per runner per snapshot, oldest snapshot first."""

    meeting_code = _text("race__meeting_code", "meeting_code")
    race_number = _number("race__race_number", "race_number")
    snapshot = _number("snapshot", "snapshot")
    taken_at = fields.Field(attribute="taken_at", column_name="taken_at", widget=LocalTimeWidget())
    source = _text("source", "source")
    runner_number = _number("runner_number", "runner_number")
    horse = _text("horse", "horse")
    odds = _number("odds", "odds", widgets.FloatWidget)


def results_dataset(*, rows: Iterable[ResultRow]) -> tablib.Dataset:
    """Return the results file's dataset: its header row, then a row per starter."""
    dataset = ResultResource().export(queryset=list(rows))
    dataset.title = "Results"
    return dataset


def odds_dataset(*, rows: Iterable[OddsRow]) -> tablib.Dataset:
    """Return the odds history file's dataset: its header row, then a row per runner per snapshot."""
    dataset = OddsResource().export(queryset=list(rows))
    dataset.title = "Odds history"
    return dataset


@dataclass(frozen=True, slots=True)
class ExportFile:
    content: bytes
    content_type: str
    filename: str


# Excel opens a CSV without a byte order mark as the PC's code page, and mangles the macrons of
# New Zealand names (Kōtare, Māori). Readers that know UTF-8 skip the mark.
CSV_ENCODING = "utf-8-sig"


def export_file(*, dataset: tablib.Dataset, file_format: str, races: Sequence[ExportRace], kind: str) -> ExportFile:
    """Return ``dataset`` written as ``file_format`` (csv or xlsx), named after its races and
    ``kind`` (results, odds)."""
    if file_format == CSV:
        content = dataset.export("csv").encode(CSV_ENCODING)
        content_type = f"{CONTENT_TYPES[CSV]}; charset=utf-8"
    elif file_format == XLSX:
        content = dataset.export("xlsx")
        content_type = CONTENT_TYPES[XLSX]
    else:
        raise ValueError(f"no export format {file_format!r}: one of {', '.join(FORMATS)}")
    return ExportFile(
        content=content,
        content_type=content_type,
        filename=export_filename(races=races, kind=kind, extension=file_format),
    )


def export_filename(*, races: Sequence[ExportRace], kind: str, extension: str) -> str:
    """Return a file name for an export of ``races``: NZ_20261204_ADD_R3_results.csv for one race,
    NZ_20261204_ADD_results.csv for races of one meeting, results.csv for several meetings."""
    meetings = sorted({race.meeting_code for race in races})
    if len(races) == 1:
        stem = f"{races[0].meeting_code}_R{races[0].race_number}_{kind}"
    elif len(meetings) == 1:
        stem = f"{meetings[0]}_{kind}"
    else:
        stem = kind
    # A meeting code is free text: only what is safe in a file name on any system is kept.
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', stem)}.{extension}"
