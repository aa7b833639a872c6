"""
The exports in the admin: actions on the race list that download the chosen races' results or
odds history, CSV or XLSX, as one file (each row names its meeting and race). Offered to staff
who may view races; RaceAdmin lists them in its actions.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from races.exports.datasets import CSV, XLSX, export_file, odds_dataset, results_dataset
from races.exports.responses import attachment_response
from races.exports.selectors import export_races_get, race_odds_rows, race_result_rows
from races.models import Race


def _download(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Race], *, kind: str, file_format: str
) -> HttpResponse | None:
    races = export_races_get(race_ids=list(queryset.values_list("pk", flat=True)))
    if kind == "results":
        with_result = [race for race in races if race.has_result]
        if not with_result:
            modeladmin.message_user(
                request, "None of the chosen races has a result yet: nothing to export.", messages.WARNING
            )
            return None
        dataset = results_dataset(rows=race_result_rows(races=with_result))
        races = with_result
    else:
        dataset = odds_dataset(rows=race_odds_rows(races=races))
    export = export_file(dataset=dataset, file_format=file_format, races=races, kind=kind)
    return attachment_response(export=export)


def _export_action(kind: str, file_format: str, description: str) -> Callable:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Race]) -> HttpResponse | None:
        return _download(modeladmin, request, queryset, kind=kind, file_format=file_format)

    action.__name__ = f"export_{kind}_{file_format}"
    return admin.action(description=description, permissions=["view"])(action)


# The race list's export actions, in the order the list offers them.
EXPORT_ACTIONS = [
    _export_action("results", CSV, "Export results (CSV)"),
    _export_action("results", XLSX, "Export results (XLSX)"),
    _export_action("odds", CSV, "Export odds history (CSV)"),
    _export_action("odds", XLSX, "Export odds history (XLSX)"),
]
