"""Write meetings' race cards in the import's format, as CSV or XLSX."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from races.models import Meeting
from races.racecard.formats import EXPORT_FORMATS, dataset_write, format_of
from races.racecard.selectors import racecard_dataset


class Command(BaseCommand):
    help = (
        "Write the race card of one or more meetings (by code) as the import reads it, one row per "
        "starter (fixtures/racecard.csv is the fixture day's). To a file with -o, else to stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("meeting_codes", nargs="+", metavar="MEETING_CODE")
        parser.add_argument("--format", choices=EXPORT_FORMATS, help="default: from -o's name, else csv")
        parser.add_argument("-o", "--output", type=Path, help="the file to write (default: stdout)")

    def handle(self, *args, meeting_codes: list[str], format: str | None, output: Path | None, **options) -> None:
        file_format = format or (format_of(output.name) if output else "csv")
        if file_format not in EXPORT_FORMATS:
            raise CommandError(f"a race card is exported as {' or '.join(EXPORT_FORMATS)}")
        try:
            dataset = racecard_dataset(meeting_codes=meeting_codes)
        except Meeting.DoesNotExist as missing:
            raise CommandError(str(missing)) from None
        content = dataset_write(dataset, file_format=file_format)
        if output:
            output.write_bytes(content)
        else:
            sys.stdout.buffer.write(content)
