"""
The REST API: race data for apps that keep no socket open, and the write path of a live feed.

Views stay thin: they validate with serializers, call selectors and services, and return.
Every rejection is a 4xx with a JSON body that says what is wrong, field by field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from races.models import Meeting, OddsSnapshot, Race
from races.selectors import race_card_get, race_result_get
from races.serializers import (
    HorseOddsSerializer,
    MeetingDetailSerializer,
    MeetingSerializer,
    OddsSnapshotSerializer,
    RaceResultSerializer,
    RaceSummarySerializer,
    ResultEntrySerializer,
    race_card_data,
    utc_timestamp,
)
from races.services import (
    RaceClosedError,
    ResultChange,
    ResultConflictError,
    odds_snapshot_record,
    placings_problems,
    race_result_record,
)


class FeedWriteOrReadOnly(permissions.BasePermission):
    """Anyone reads; writing needs a feed user (the races.feed_race permission) or staff."""

    message = "Pushing odds and results needs a feed user's token (the 'feed race' permission) or staff."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        user = request.user
        return bool(user and user.is_authenticated and (user.is_staff or user.has_perm("races.feed_race")))


def _date_filter(request: Request, name: str) -> dt.date | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError({name: [f"must be a date as YYYY-MM-DD, not {value!r}."]}) from None


DATE_PARAMETER = OpenApiParameter("date", OpenApiTypes.DATE, description="meeting date, YYYY-MM-DD")


# --- Meetings ---------------------------------------------------------------------------------


@extend_schema(parameters=[DATE_PARAMETER, OpenApiParameter("venue", str, description="venue name")])
class MeetingList(generics.ListAPIView):
    """List meetings, oldest first, optionally of one date or venue."""

    serializer_class = MeetingSerializer

    def get_queryset(self):
        meetings = Meeting.objects.annotate(race_count=Count("races")).order_by("date", "code")
        if (date := _date_filter(self.request, "date")) is not None:
            meetings = meetings.filter(date=date)
        if venue := self.request.query_params.get("venue"):
            meetings = meetings.filter(venue__iexact=venue)
        return meetings


class MeetingDetail(generics.RetrieveAPIView):
    """Return a meeting with its races, by its code (e.g. NZ_20261204_ADD)."""

    serializer_class = MeetingDetailSerializer
    lookup_field = "code"
    queryset = Meeting.objects.prefetch_related("races")


# --- Races ------------------------------------------------------------------------------------


@extend_schema(
    parameters=[
        DATE_PARAMETER,
        OpenApiParameter("meeting", str, description="meeting code"),
        OpenApiParameter("status", str, enum=Race.Status.values),
    ]
)
class RaceList(generics.ListAPIView):
    """List races in start order, optionally of one date, meeting or status."""

    serializer_class = RaceSummarySerializer

    def get_queryset(self):
        races = (
            Race.objects.select_related("meeting")
            .annotate(starter_count=Count("starters"))
            .order_by("meeting__date", "race_datetime", "meeting__code", "race_number")
        )
        if (date := _date_filter(self.request, "date")) is not None:
            races = races.filter(meeting__date=date)
        if meeting := self.request.query_params.get("meeting"):
            races = races.filter(meeting__code=meeting)
        if race_status := self.request.query_params.get("status"):
            if race_status not in Race.Status.values:
                raise ValidationError({"status": [f"must be one of {', '.join(Race.Status.values)}."]})
            races = races.filter(status=race_status)
        return races


class RaceDetail(APIView):
    @extend_schema(
        responses={200: OpenApiResponse(description="Exactly initial_state's data: race, starters, starter_count.")}
    )
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race and its starters, with the names and shapes of initial_state's data."""
        card = race_card_get(race_id=race_id)
        if card is None:
            return _race_not_found(race_id)
        return Response(race_card_data(card))


def _race_not_found(race_id: int) -> Response:
    return Response({"detail": f"Race {race_id} does not exist."}, status=status.HTTP_404_NOT_FOUND)


# --- Odds -------------------------------------------------------------------------------------


class OddsPost(serializers.Serializer):
    odds = HorseOddsSerializer(many=True, allow_empty=False)

    def validate_odds(self, odds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        horse_ids = [item["horse_id"] for item in odds]
        duplicates = sorted({h for h in horse_ids if horse_ids.count(h) > 1})
        if duplicates:
            raise ValidationError(f"horse {', '.join(map(str, duplicates))} priced more than once.")
        unknown = sorted(set(horse_ids) - self.context["starter_horse_ids"])
        if unknown:
            raise ValidationError(
                f"horse {', '.join(map(str, unknown))} is not a starter in race {self.context['race_id']}."
            )
        return odds


class RaceOdds(generics.GenericAPIView):
    permission_classes = [FeedWriteOrReadOnly]
    serializer_class = OddsSnapshotSerializer

    @extend_schema(
        parameters=[OpenApiParameter("since", OpenApiTypes.DATETIME, description="only snapshots after this time")],
        responses=OddsSnapshotSerializer(many=True),
    )
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's odds history, oldest first (paginated)."""
        get_object_or_404(Race.objects.only("pk"), pk=race_id)
        snapshots = OddsSnapshot.objects.filter(race_id=race_id).order_by("taken_at", "pk")
        if (since := request.query_params.get("since")) is not None:
            moment = parse_datetime(since.replace(" ", "+"))  # a '+' in a URL arrives as a space
            if moment is None or timezone.is_naive(moment):
                raise ValidationError({"since": [f"must be an ISO 8601 date-time with its offset, not {since!r}."]})
            snapshots = snapshots.filter(taken_at__gt=moment)
        page = self.paginate_queryset(snapshots)
        return self.get_paginated_response(OddsSnapshotSerializer(page, many=True).data)

    @extend_schema(
        request=HorseOddsSerializer(many=True),
        responses={
            201: inline_serializer(
                "OddsAccepted",
                {"race_id": serializers.IntegerField(), "timestamp": serializers.CharField(), "odds": HorseOddsSerializer(many=True)},
            ),
            400: OpenApiResponse(description="What is wrong, field by field"),
            409: OpenApiResponse(description="The race is finished"),
        },
    )
    def post(self, request: Request, race_id: int) -> Response:
        """Push the race's current win odds; stored, then broadcast to its clients as odds_update."""
        race = get_object_or_404(Race.objects.only("pk"), pk=race_id)
        body = request.data if isinstance(request.data, dict) else {"odds": request.data}
        incoming = OddsPost(
            data=body,
            context={"race_id": race.pk, "starter_horse_ids": set(race.starters.values_list("horse_id", flat=True))},
        )
        incoming.is_valid(raise_exception=True)
        odds = [(item["horse_id"], float(item["odds"])) for item in incoming.validated_data["odds"]]
        taken_at = timezone.now()
        try:
            odds_snapshot_record(race_id=race.pk, odds=odds, source=OddsSnapshot.Source.FEED, taken_at=taken_at)
        except RaceClosedError as closed:
            return Response({"detail": f"{closed}."}, status=status.HTTP_409_CONFLICT)
        return Response(
            {
                "race_id": race.pk,
                "timestamp": utc_timestamp(taken_at),
                "odds": [{"horse_id": horse_id, "odds": price} for horse_id, price in odds],
            },
            status=status.HTTP_201_CREATED,
        )


class RaceOddsLatest(APIView):
    @extend_schema(responses={200: OddsSnapshotSerializer, 404: OpenApiResponse(description="No odds yet")})
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's latest odds snapshot."""
        snapshot = OddsSnapshot.objects.filter(race_id=race_id).order_by("-taken_at", "-pk").first()
        if snapshot is None:
            if not Race.objects.filter(pk=race_id).exists():
                return _race_not_found(race_id)
            return Response({"detail": f"Race {race_id} has no odds yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(OddsSnapshotSerializer(snapshot).data)


# --- Results ----------------------------------------------------------------------------------


class ResultPost(serializers.Serializer):
    results = ResultEntrySerializer(many=True, allow_empty=False)
    correction = serializers.BooleanField(
        default=False, help_text="true to replace a result already declared (a protest, a disqualification)"
    )

    def validate_results(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        horse_ids = [item["horse_id"] for item in results]
        starters = self.context["starter_horse_ids"]
        problems = []
        if duplicates := sorted({h for h in horse_ids if horse_ids.count(h) > 1}):
            problems.append(f"horse {', '.join(map(str, duplicates))} listed more than once.")
        if unknown := sorted(set(horse_ids) - starters):
            problems.append(f"horse {', '.join(map(str, unknown))} is not a starter in race {self.context['race_id']}.")
        if missing := sorted(starters - set(horse_ids)):
            problems.append(
                f"horse {', '.join(map(str, missing))} missing: list every starter, "
                "with finished false for those that did not finish."
            )
        if not problems:
            problems = placings_problems({item["horse_id"]: item.get("placing") for item in results})
        if problems:
            raise ValidationError(problems)
        return results


def _result_body(race_id: int) -> dict[str, Any]:
    declared_at, result = race_result_get(race_id=race_id)
    return _result_as_json(race_id, declared_at, result)


def _result_as_json(race_id: int, declared_at: dt.datetime, result: list[tuple[int, int | None]]) -> dict[str, Any]:
    return {
        "race_id": race_id,
        "status": Race.Status.FINISHED,
        "timestamp": utc_timestamp(declared_at),
        "results": [
            {"horse_id": horse_id, "placing": placing, "finished": placing is not None}
            for horse_id, placing in result
        ],
    }


class RaceResults(APIView):
    permission_classes = [FeedWriteOrReadOnly]

    @extend_schema(responses={200: RaceResultSerializer, 404: OpenApiResponse(description="No result declared yet")})
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's declared result: finishers by placing, then non-finishers."""
        declared = race_result_get(race_id=race_id)
        if declared is None:
            if not Race.objects.filter(pk=race_id).exists():
                return _race_not_found(race_id)
            return Response(
                {"detail": f"Race {race_id} has no result declared yet."}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(_result_as_json(race_id, *declared))

    @extend_schema(
        request=ResultPost,
        responses={
            201: RaceResultSerializer,
            200: OpenApiResponse(RaceResultSerializer, description="Unchanged (identical re-post) or corrected"),
            400: OpenApiResponse(description="What is wrong, field by field"),
            409: OpenApiResponse(description="A different result is declared; send correction: true to replace it"),
        },
    )
    def post(self, request: Request, race_id: int) -> Response:
        """Declare the race's result (or correct it); stored, then broadcast as result_update."""
        race = get_object_or_404(Race.objects.only("pk"), pk=race_id)
        incoming = ResultPost(
            data=request.data,
            context={"race_id": race.pk, "starter_horse_ids": set(race.starters.values_list("horse_id", flat=True))},
        )
        incoming.is_valid(raise_exception=True)
        placings = {item["horse_id"]: item.get("placing") for item in incoming.validated_data["results"]}
        try:
            change = race_result_record(
                race_id=race.pk,
                placings=placings,
                declared_at=timezone.now(),
                source=OddsSnapshot.Source.FEED,
                correction=incoming.validated_data["correction"],
            )
        except ResultConflictError:
            body = _result_body(race.pk)
            body["detail"] = 'A different result is already declared; send "correction": true to replace it.'
            return Response(body, status=status.HTTP_409_CONFLICT)
        body = _result_body(race.pk)
        body["change"] = change.value
        code = status.HTTP_201_CREATED if change is ResultChange.DECLARED else status.HTTP_200_OK
        return Response(body, status=code)
