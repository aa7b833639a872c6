"""Import a race card file (CSV, XLSX or JSON) as the admin's import does: all or nothing."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from races.models import Source
from races.racecard.formats import FORMATS, FileRefused, dataset_open
from races.racecard.services import racecard_import
from races.services import Actor


class Command(BaseCommand):
    help = (
        "Import meetings, races and starters from a race card file, one row per starter "
        "(docs/race-office.md). Every row is checked first: a file with any bad row changes nothing, "
        "and the command exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="say what the file would change; save nothing")
        parser.add_argument("--format", choices=sorted(FORMATS), help="the file's format (default: from its name)")

    def handle(self, *args, file: Path, dry_run: bool, format: str | None, **options) -> None:
        try:
            dataset = dataset_open(file, file_format=format)
        except FileRefused as refused:
            raise CommandError(f"{file}: refused, nothing changed: {refused}") from None
        report = racecard_import(dataset=dataset, actor=Actor(Source.ADMIN), dry_run=dry_run)
        for error in report.errors:
            self.stderr.write(str(error))
        if options["verbosity"] >= 1:
            for change in report.changes:
                self.stdout.write(change)
        self.stdout.write(report.summary())
        if report.errors:
            raise CommandError(f"{file}: refused ({report.refused} bad row(s)), nothing changed")
