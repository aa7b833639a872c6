"""
A race card file's rows, parsed and checked: each cell into its value, and the rows against each
other (a race described alike on each of its rows, no runner number or horse twice in a race).
Pure: no ORM, no I/O; what a row means to the database is races.racecard.services' job.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first starter row 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from races.models import Race
from races.racecard.columns import MEETING_COLUMNS, NAMES, RACE_COLUMNS
from races.spreadsheets import spreadsheet_unescaped

FIRST_ROW = 2  # the header is row 1


@dataclass(frozen=True, slots=True)
class RowError:
    """Why a row (or the file, row 0; its header, row 1) is refused, and in which column."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = "file" if self.row == 0 else f"row {self.row}"
        return f"{where}, {self.column}: {self.message}" if self.column else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class CardRow:
    """One starter of the card, with its race and meeting, as the file gives them."""

    row: int
    meeting_code: str
    date: dt.date
    venue: str | None
    race_number: int
    race_name: str
    distance_m: int
    gait: str | None
    start_type: str | None
    start_time: dt.datetime | None
    track_condition: str | None
    weather: str | None
    runner_number: int | None
    barrier: int | None
    handicap_m: int | None
    horse: str
    driver: str | None
    trainer: str | None

    @property
    def race_key(self) -> tuple[str, int]:
        return (self.meeting_code, self.race_number)


class CellError(ValueError):
    pass


def name_key(name: str) -> str:
    """Return the key a horse, driver or trainer is matched by: trimmed, spaces single, case ignored."""
    return " ".join(name.split()).casefold()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return spreadsheet_unescaped(" ".join(str(value).split()))  # as the export escaped it


def _text_of(max_length: int, *, required: bool) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        text = _text(value)
        if not text:
            if required:
                raise CellError("is empty: it needs a value")
            return None
        if len(text) > max_length:
            raise CellError(f"is {len(text)} characters long: at most {max_length}")
        return text

    return parse


def _whole_number(minimum: int, *, required: bool) -> Callable[[Any], int | None]:
    def parse(value: Any) -> int | None:
        if isinstance(value, bool):
            raise CellError(f"{value!r} is not a whole number")
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = value
        else:
            text = _text(value)
            if not text:
                if required:
                    raise CellError("is empty: it needs a value")
                return None
            try:
                number = float(text) if "." in text else int(text)
            except ValueError:
                raise CellError(f"{text!r} is not a whole number") from None
        if isinstance(number, float):
            if not number.is_integer():
                raise CellError(f"{number!r} is not a whole number")
            number = int(number)
        if number < minimum:
            raise CellError(f"{number} is less than {minimum}")
        if number > 32767:  # the database's small integers; no race is that long
            raise CellError(f"{number} is too large")
        return number

    return parse


def _choice(
    choices: type[Race.Gait] | type[Race.StartType] | type[Race.Weather] | type[Race.TrackCondition], what: str
):
    allowed = {str(value): str(value) for value in choices.values}
    allowed.update({str(label).casefold(): str(value) for value, label in choices.choices})

    def parse(value: Any) -> str | None:
        text = _text(value)
        if not text:
            return None
        try:
            return allowed[text.casefold()]
        except KeyError:
            known = ", ".join(str(v) for v in choices.values)
            raise CellError(f"unknown {what} {text!r}: use one of {known}") from None

    return parse


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _text(value)
    if not text:
        raise CellError("is empty: it needs a value")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CellError(f"{text!r} is not a date as YYYY-MM-DD") from None


def _start_time(value: Any, tz: ZoneInfo) -> dt.datetime | None:
    # A spreadsheet may have turned the text into a date and time of its own, with no offset:
    # that is taken as the venue's (the server's TIME_ZONE) time.
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    text = _text(value)
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CellError(f"{text!r} is not a date and time as 2026-12-04T18:05:00+13:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


PARSERS: dict[str, Callable[[Any], Any]] = {
    "meeting_code": _text_of(32, required=True),
    "date": _date,
    "venue": _text_of(100, required=False),
    "race_number": _whole_number(1, required=True),
    "race_name": lambda value: _text_of(200, required=False)(value) or "",
    "distance_m": _whole_number(1, required=True),
    "gait": _choice(Race.Gait, "gait"),
    "start_type": _choice(Race.StartType, "start type"),
    "track_condition": _choice(Race.TrackCondition, "track condition"),
    "weather": _choice(Race.Weather, "weather"),
    "runner_number": _whole_number(1, required=False),
    "barrier": _whole_number(1, required=False),
    "handicap_m": _whole_number(0, required=False),
    "horse": _text_of(100, required=True),
    "driver": _text_of(100, required=False),
    "trainer": _text_of(100, required=False),
}


def header_errors(headers: Sequence[Any]) -> list[RowError]:
    """Return what is wrong with the header row: every column, each once, and no other."""
    given = [_text(header).casefold() for header in headers]
    errors = [RowError(1, name, "missing column") for name in NAMES if name not in given]
    seen: set[str] = set()
    for header in given:
        if not header:
            continue  # a column with no name: a spreadsheet's empty one (card_rows_parse checks it is)
        if header in seen:
            errors.append(RowError(1, header, "this column is in the file twice"))
        elif header not in NAMES:
            errors.append(RowError(1, header or "(no name)", f"unknown column: the columns are {', '.join(NAMES)}"))
        seen.add(header)
    return errors


def card_rows_parse(
    *, headers: Sequence[Any], rows: Iterable[Sequence[Any]], tz: ZoneInfo
) -> tuple[list[CardRow], list[RowError]]:
    """Parse a file's rows under its header; return the rows and every error found (rows with an
    error are left out: the caller refuses the file if there is any)."""
    errors = header_errors(headers)
    if errors:
        return [], errors
    positions = {_text(header).casefold(): index for index, header in enumerate(headers)}
    unnamed = [index for index, header in enumerate(headers) if not _text(header)]
    parsed: list[CardRow] = []
    for number, cells in enumerate(rows, start=FIRST_ROW):
        if all(_text(cell) == "" for cell in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if any(index < len(cells) and _text(cells[index]) for index in unnamed):
            errors.append(
                RowError(number, "(no name)", "a value in a column with no header: name the column or clear it")
            )
            continue
        values: dict[str, Any] = {"row": number}
        row_errors = []
        for name in NAMES:
            index = positions[name]
            cell = cells[index] if index < len(cells) else None
            try:
                values[name] = _start_time(cell, tz) if name == "start_time" else PARSERS[name](cell)
            except CellError as problem:
                row_errors.append(RowError(number, name, str(problem)))
        if row_errors:
            errors.extend(row_errors)
        else:
            parsed.append(CardRow(**values))
    if not parsed and not errors:
        errors.append(RowError(0, "", "the file has no starters: one row per starter under the header"))
    errors.extend(_across_rows(parsed))
    errors.sort(key=lambda error: error.row)
    return parsed, errors


def _across_rows(rows: list[CardRow]) -> list[RowError]:
    """Check the rows against each other: a meeting and a race are described alike on each of
    their rows, and a race has each runner number and each horse once."""
    errors = []
    meetings: dict[str, CardRow] = {}
    races: dict[tuple[str, int], CardRow] = {}
    runners: dict[tuple[str, int, int], CardRow] = {}
    horses: dict[tuple[str, int, str], CardRow] = {}
    for row in rows:
        first = meetings.setdefault(row.meeting_code, row)
        for name in MEETING_COLUMNS:
            if getattr(row, name) != getattr(first, name):
                errors.append(RowError(row.row, name, f"differs from row {first.row}'s for meeting {row.meeting_code}"))
        first = races.setdefault(row.race_key, row)
        for name in RACE_COLUMNS:
            if getattr(row, name) != getattr(first, name):
                errors.append(
                    RowError(
                        row.row,
                        name,
                        f"differs from row {first.row}'s for race {row.race_number} of {row.meeting_code}",
                    )
                )
        if row.runner_number is not None:
            first = runners.setdefault((*row.race_key, row.runner_number), row)
            if first is not row:
                errors.append(
                    RowError(
                        row.row,
                        "runner_number",
                        f"runner number {row.runner_number} is row {first.row}'s too, in race {row.race_number} "
                        f"of {row.meeting_code}",
                    )
                )
        first = horses.setdefault((*row.race_key, name_key(row.horse)), row)
        if first is not row:
            errors.append(
                RowError(
                    row.row,
                    "horse",
                    f"{row.horse} is row {first.row}'s horse too, in race {row.race_number} of {row.meeting_code}",
                )
            )
    return errors
