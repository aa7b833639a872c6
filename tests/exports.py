"""Shared helpers of the export tests: races with a result or odds history, and the files read back."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import openpyxl

from races.models import Horse, Race, Source
from races.services import Actor, odds_snapshot_record, race_result_record, starter_scratch
from tests import factories

DECLARED_AT = dt.datetime(2026, 12, 4, 6, 40, 5, tzinfo=dt.UTC)  # 19:40:05 in Addington


def horse_ids(race: Race) -> list[int]:
    """Return the race's horses in runner order."""
    return list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))


def race_with_result(
    placings: list[int | None], *, scratched: int = 0, official: bool = True, names: list[str] | None = None
) -> Race:
    """Create a race whose first runners take ``placings`` (None: did not finish) and whose last
    ``scratched`` runners are scratched; its horses named ``names`` in runner order, if given."""
    race = factories.race_create(starter_count=len(placings) + scratched)
    horses = horse_ids(race)
    for horse_id, name in zip(horses, names or [], strict=False):
        Horse.objects.filter(pk=horse_id).update(name=name)
    for horse_id in horses[len(placings) :]:
        starter_scratch(race_id=race.pk, horse_id=horse_id, at=DECLARED_AT, actor=Actor(Source.ADMIN))
    race_result_record(
        race_id=race.pk,
        placings=dict(zip(horses, placings, strict=False)),
        declared_at=DECLARED_AT,
        source=Source.ADMIN,
        official=official,
    )
    race.refresh_from_db()
    return race


def race_with_odds(markets: list[list[float]], *, starter_count: int | None = None) -> Race:
    """Create a race with an odds snapshot per market (prices in runner order), a minute apart."""
    race = factories.race_create(starter_count=starter_count or len(markets[0]))
    horses = horse_ids(race)
    for minute, prices in enumerate(markets):
        odds_snapshot_record(
            race_id=race.pk,
            odds=list(zip(horses, prices, strict=False)),
            source="feed",
            taken_at=DECLARED_AT + dt.timedelta(minutes=minute),
        )
    return race


def csv_rows(response: Any) -> list[dict[str, str]]:
    """Return a CSV download's rows, by its header row's names."""
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def xlsx_rows(response: Any) -> list[dict[str, Any]]:
    """Return an XLSX download's rows (its first sheet), by its header row's names, as the cells hold them."""
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header, *rows = sheet.iter_rows(values_only=True)
    return [dict(zip(header, row, strict=True)) for row in rows]


def xlsx_cells(response: Any) -> list[Any]:
    """Return every cell of an XLSX download's first sheet (its header row's too)."""
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    return [cell for row in sheet.iter_rows() for cell in row]
