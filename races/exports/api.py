"""
The exports in the API: a race's result and odds history, and a meeting's race card, as a file,
CSV or XLSX (``?format=csv|xlsx``, CSV if not given). Public reads, like the race's other reads; a refusal is
the API's JSON error body, whatever file was asked for.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from races.api import RACE_ID_PARAMETER, race_not_found
from races.exports.datasets import (
    CONTENT_TYPES,
    CSV,
    FORMATS,
    XLSX,
    ExportFile,
    export_file,
    odds_dataset,
    results_dataset,
)
from races.exports.responses import attachment_response
from races.exports.selectors import export_races_get, race_odds_rows, race_result_rows
from races.models import Meeting
from races.openapi import ERROR, PUBLIC
from races.racecard.formats import content_type, dataset_write
from races.racecard.selectors import racecard_dataset

FORMAT_PARAMETER = OpenApiParameter(
    "format", str, enum=FORMATS, default=CSV, description="the file's format: csv (UTF-8, with a BOM) or xlsx"
)
BAD_FORMAT = OpenApiResponse(ERROR, description="format is not csv or xlsx, or is given twice (errors.format)")


def _file_responses(what: str, not_found: str) -> dict[Any, Any]:
    return {
        **{
            (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description=f"{what}, as an attachment")
            # XLSX first: a client generated from the schema (openapi-python-client) reads a response
            # by the first media type, and would read a file declared text/csv as text, not bytes.
            for media_type in (CONTENT_TYPES[XLSX], CONTENT_TYPES[CSV])
        },
        (400, "application/json"): BAD_FORMAT,
        (404, "application/json"): OpenApiResponse(ERROR, description=not_found),
    }


class ErrorsAsJson(BaseContentNegotiation):
    """Render what DRF renders (the error body) as JSON: ``?format=`` names the file, not one of
    DRF's renderers (DRF would answer a format it has no renderer for with a 404)."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _file_format(request: Request) -> str:
    values = request.query_params.getlist("format")
    if len(values) > 1:
        raise ValidationError({"format": ["give it once."]})
    file_format = values[0] if values else CSV
    if file_format not in FORMATS:
        raise ValidationError({"format": [f"must be one of {', '.join(FORMATS)}."]})
    return file_format


class _RaceExport(APIView):
    content_negotiation_class = ErrorsAsJson


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceResultsExport(_RaceExport):
    @extend_schema(
        **PUBLIC,
        parameters=[FORMAT_PARAMETER],
        responses=_file_responses("The race's result", "No such race, or no result declared yet"),
    )
    def get(self, request: Request, race_id: int) -> HttpResponse:
        """Return the race's latest result, interim or official, as a file: a row per starter
        (finishers by placing, a dead heat's starters sharing theirs, then those that did not
        finish, then the scratched ones) with runner number, horse, driver, trainer, placing,
        dead heat, outcome, the result's status and when it was declared."""
        file_format = _file_format(request)
        races = export_races_get(race_ids=[race_id])
        if not races:
            return race_not_found(race_id)
        if not races[0].has_result:
            return Response({"detail": f"Race {race_id} has no result declared yet."}, status=status.HTTP_404_NOT_FOUND)
        dataset = results_dataset(rows=race_result_rows(races=races))
        return attachment_response(
            export=export_file(dataset=dataset, file_format=file_format, races=races, kind="results")
        )


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceOddsExport(_RaceExport):
    @extend_schema(
        **PUBLIC,
        parameters=[FORMAT_PARAMETER],
        responses=_file_responses("The race's odds history (only its header row before any odds)", "No such race"),
    )
    def get(self, request: Request, race_id: int) -> HttpResponse:
        """Return the race's odds history ("flucs") as a file: a row per runner per odds snapshot,
        oldest first, with the snapshot's number and time, its source, runner number, horse and
        win odds."""
        file_format = _file_format(request)
        races = export_races_get(race_ids=[race_id])
        if not races:
            return race_not_found(race_id)
        dataset = odds_dataset(rows=race_odds_rows(races=races))
        return attachment_response(
            export=export_file(dataset=dataset, file_format=file_format, races=races, kind="odds")
        )


@extend_schema(parameters=[OpenApiParameter("code", str, OpenApiParameter.PATH, description="meeting code")])
class MeetingRacecardExport(_RaceExport):
    @extend_schema(
        **PUBLIC,
        parameters=[FORMAT_PARAMETER],
        responses=_file_responses("The meeting's race card, in the race card import's format", "No such meeting"),
    )
    def get(self, request: Request, code: str) -> HttpResponse:
        """Return the meeting's race card as a file in the format the race office imports
        (docs/race-office.md): a row per starter, in race and runner order, scratched runners left
        out, with the meeting, the race and the starter's horse, driver and trainer."""
        file_format = _file_format(request)
        try:
            dataset = racecard_dataset(meeting_codes=[code])
        except Meeting.DoesNotExist:
            return Response({"detail": f"Meeting {code} does not exist."}, status=status.HTTP_404_NOT_FOUND)
        return attachment_response(
            export=ExportFile(
                content=dataset_write(dataset, file_format=file_format),
                content_type=content_type(file_format),
                filename=f"racecard-{code}.{file_format}",
            )
        )
