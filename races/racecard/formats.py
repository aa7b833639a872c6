"""
Race card files in and out: a file's bytes into a tablib Dataset (CSV, XLSX or JSON, through
django-import-export's formats), and a Dataset into CSV or XLSX bytes, with cells a spreadsheet
would run as formulas escaped. Each refusal is a FileRefused with the message the office reads.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path, PurePath

import tablib
from import_export.formats import base_formats
from openpyxl.utils.exceptions import InvalidFileException  # type: ignore[import-untyped]

from races.spreadsheets import spreadsheet_safe

# A race card is a few hundred rows (the fixture day's 203 starters are 40 kB as CSV, 25 kB as
# XLSX); 5 MB is more than a hundred race days, and refusing above it, before parsing, keeps a
# mistaken upload (a photo, a database dump) from holding a worker and its memory.
MAX_FILE_BYTES = 5 * 1024 * 1024
# What an XLSX may unpack to: the fixture day's 203 starters unpack to well under 1 MB.
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
FORMATS: dict[str, type[base_formats.TablibFormat]] = {
    "csv": base_formats.CSV,
    "xlsx": base_formats.XLSX,
    "json": base_formats.JSON,
}
EXPORT_FORMATS = ("csv", "xlsx")


class FileRefused(ValueError):
    """The file cannot be read as a race card; the message says why, for the race office."""


def format_of(file_name: str) -> str:
    """Return the format a file's name says it is in (csv, xlsx or json)."""
    extension = PurePath(file_name).suffix.lower().lstrip(".")
    if extension not in FORMATS:
        raise FileRefused(f"{file_name!r} is not a .csv, .xlsx or .json file")
    return extension


def size_check(size: int) -> None:
    """Refuse a file above MAX_FILE_BYTES, before it is read."""
    if size > MAX_FILE_BYTES:
        raise FileRefused(
            f"the file is {size / 1024 / 1024:.1f} MB: a race card file may be at most "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB"
        )


def _text(content: bytes) -> str:
    # UTF-8, with or without the byte order mark Excel writes ("CSV UTF-8"). Any other encoding is
    # refused rather than guessed: Latin-1 decodes any bytes at all, so a guess would put wrong
    # letters in horses' names without a word.
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        line = content[: problem.start].count(b"\n") + 1
        raise FileRefused(
            f"the file is not UTF-8 text (byte 0x{content[problem.start]:02X} on line {line}): "
            'save it as UTF-8 (in Excel, "CSV UTF-8") and import it again'
        ) from None


def dataset_open(path: Path, *, file_format: str | None = None) -> tablib.Dataset:
    """Return the rows of the file at ``path`` (its format from its name unless given); its size is
    checked before it is read."""
    file_format = file_format or format_of(path.name)
    try:
        size_check(path.stat().st_size)
        return dataset_read(content=path.read_bytes(), file_format=file_format)
    except OSError as problem:
        raise FileRefused(f"cannot read {path}: {problem.strerror}") from None


def dataset_read(*, content: bytes, file_format: str) -> tablib.Dataset:
    """Return the file's rows, under its header, as a Dataset; raise FileRefused if it cannot be read."""
    size_check(len(content))
    if file_format not in FORMATS:
        raise FileRefused(f"unknown format {file_format!r}: csv, xlsx or json")
    reader = FORMATS[file_format]()
    if file_format == "xlsx":
        _unpacked_size_check(content)
        try:
            return reader.create_dataset(content)
        except StopIteration:
            raise FileRefused(
                "the workbook's first sheet is empty: it needs the header and a row per starter"
            ) from None
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as problem:
            raise FileRefused(
                f"the file is not an XLSX workbook ({type(problem).__name__}): save it from Excel as .xlsx"
            ) from None
        except tablib.InvalidDimensions:
            raise FileRefused("a row of the workbook's first sheet has more cells than its header") from None
    text = _text(content).rstrip("\r\n")  # blank lines at the end, as spreadsheets leave them
    if not text.strip():
        raise FileRefused("the file is empty")
    if file_format == "json":
        return _json_dataset(text)
    try:
        return reader.create_dataset(text)
    except tablib.InvalidDimensions:
        raise FileRefused(_ragged_row(text)) from None
    except csv.Error as problem:
        raise FileRefused(f"the file cannot be read as CSV: {problem}") from None


def _unpacked_size_check(content: bytes) -> None:
    """Refuse a workbook that would unpack to more than MAX_UNPACKED_BYTES (a 5 MB zip can hold
    gigabytes of repeated cells), from its directory, before anything is unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as workbook:
            unpacked = sum(member.file_size for member in workbook.infolist())
    except (zipfile.BadZipFile, OSError) as problem:
        raise FileRefused(
            f"the file is not an XLSX workbook ({type(problem).__name__}): save it from Excel as .xlsx"
        ) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise FileRefused(
            f"the workbook unpacks to {unpacked / 1024 / 1024:.0f} MB: a race card workbook may unpack to at "
            f"most {MAX_UNPACKED_BYTES // 1024 // 1024} MB"
        )


def _json_dataset(text: str) -> tablib.Dataset:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as problem:
        raise FileRefused(f"the file is not JSON: {problem.msg} at line {problem.lineno}") from None
    except RecursionError:
        raise FileRefused("the file nests lists or objects too deep: a race card is a list of flat objects") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise FileRefused("a JSON race card is a list of objects, one a starter, keyed by column name")
    if not rows:
        raise FileRefused("the file has no starters: one object per starter")
    for number, row in enumerate(rows, start=2):  # numbered as a CSV's rows, the header row 1
        for key, value in row.items():
            if isinstance(value, (list, dict)):
                raise FileRefused(f"row {number}, {key}: a value, not a list or an object")
    # Every key of every object, so that one missing from the first object is not lost.
    headers = list(dict.fromkeys(key for row in rows for key in row))
    return tablib.Dataset(*[[row.get(key) for key in headers] for row in rows], headers=headers)


def _ragged_row(text: str) -> str:
    lines = list(csv.reader(io.StringIO(text)))
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(lines[0]):
            return f"row {number} has {len(line)} cells, the header {len(lines[0])}: every row has one cell per column"
    return "the rows do not have one cell per column"


def dataset_write(dataset: tablib.Dataset, *, file_format: str) -> bytes:
    """Return the Dataset as a file's bytes, text cells a spreadsheet would run as formulas escaped.
    (django-import-export's IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT is not used: it turns every
    cell, numbers included, into text and only strips a leading "=".)"""
    if file_format not in EXPORT_FORMATS:
        raise ValueError(f"a race card is exported as {' or '.join(EXPORT_FORMATS)}, not {file_format!r}")
    escaped = tablib.Dataset(*[[spreadsheet_safe(cell) for cell in row] for row in dataset], headers=dataset.headers)
    data = FORMATS[file_format]().export_data(escaped)
    return data.encode() if isinstance(data, str) else data


def content_type(file_format: str) -> str:
    return FORMATS[file_format]().get_content_type()
