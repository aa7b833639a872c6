"""
The REST API: race data for apps that keep no socket open, and the write path of a live feed.

Views stay thin: they validate with serializers, call selectors and services, and return.
Every rejection is a 4xx with the API's one error body, ``{"detail": "...", "errors": {...}}``
(racing/views.py): 400 when the request does not follow the schema (/api/schema/), 422 when it
does but does not fit the race (a horse that is not a starter, one listed twice, placings that do
not run 1..k). The schema's own truths are in races/openapi.py.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
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

from races import lifecycle
from races.converters import DATABASE_ID_MAX
from races.models import Meeting, OddsSnapshot, Race, Source, Starter, StarterChange
from races.openapi import BODILESS_WRITE_ERRORS, ERROR, PUBLIC, WRITE_ERRORS
from races.selectors import (
    NEXT_TO_GO_LIMIT_MAX,
    RaceResult,
    race_card_get,
    race_result_get,
    races_next_to_go,
    starter_card_get,
)
from races.serializers import (
    MAX_STARTERS,
    HorseOddsSerializer,
    LocalDateTimeField,
    MeetingDetailSerializer,
    MeetingSerializer,
    NextToGoSerializer,
    OddsSnapshotSerializer,
    RaceCardSerializer,
    RaceCardStarterSerializer,
    RaceResultSerializer,
    RaceSummarySerializer,
    ResultChangeSerializer,
    ResultConflictSerializer,
    ResultEntrySerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    UtcTimestampField,
    race_card_data,
    race_summary_data,
    utc_timestamp,
)
from races.services import (
    Actor,
    Change,
    RaceClosedError,
    ResultChange,
    ResultConflictError,
    TransitionError,
    odds_snapshot_record,
    placings_problems,
    race_result_record,
    race_status_change,
    starter_driver_change,
    starter_reinstate,
    starter_scratch,
)


class FeedWriteOrReadOnly(permissions.BasePermission):
    """Anyone reads; writing needs a feed user (the races.feed_race permission) or staff."""

    message = "Pushing odds and results needs a feed user's token (the 'feed race' permission) or staff."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        user = request.user
        return bool(user and user.is_authenticated and (user.is_staff or user.has_perm("races.feed_race")))


def _query_value(request: Request, name: str) -> str | None:
    """Return the query parameter ``name``, None if absent; refuse it given more than once."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ValidationError({name: ["give it once."]})
    return values[0] if values else None


def _date_filter(request: Request, name: str) -> dt.date | None:
    value = _query_value(request, name)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError({name: [f"must be a date as YYYY-MM-DD, not {value!r}."]}) from None


def _moment_filter(request: Request, name: str) -> dt.datetime | None:
    """Return the query parameter ``name`` as an aware datetime in UTC, or None if it is absent."""
    value = _query_value(request, name)
    if value is None:
        return None
    refusal = ValidationError(
        {
            name: [
                "must be an ISO 8601 date-time with its UTC offset, such as 2026-12-04T19:30:00+13:00, "
                f"between the years 1 and 9999 in UTC; not {value!r}."
            ]
        }
    )
    try:
        moment = parse_datetime(value.replace(" ", "+"))  # a '+' in a URL arrives as a space
    except ValueError:  # well formed but impossible: month 13, offset +99:00
        raise refusal from None
    if moment is None or timezone.is_naive(moment):
        raise refusal
    # In UTC here rather than in the database: PostgreSQL refuses offsets past 15:59, and a
    # moment whose UTC time falls outside the years 1 to 9999 overflows on the way there.
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise refusal from None


def _text_filter(request: Request, name: str) -> str | None:
    """Return the query parameter ``name``, or None if it is absent or empty."""
    value = _query_value(request, name)
    if value and "\x00" in value:
        # PostgreSQL refuses NUL in a text value: a database error, so a 500, if it got there.
        raise ValidationError({name: ["must not contain NUL characters."]})
    return value or None


def _count_parameter(request: Request, name: str, *, default: int, maximum: int) -> int:
    """Return the query parameter ``name`` as a whole number from 1 to ``maximum``, or ``default``
    if it is absent."""
    value = _query_value(request, name)
    if value is None:
        return default
    # ASCII digits only (int() would take " 5", "+5" and "٥"), and few of them: int() refuses a
    # string of thousands of digits with a ValueError of its own.
    if not (value.isascii() and value.isdigit() and len(value) <= 9 and 1 <= int(value) <= maximum):
        raise ValidationError({name: [f"must be a whole number from 1 to {maximum}."]})
    return int(value)


DATE_PARAMETER = OpenApiParameter("date", OpenApiTypes.DATE, description="meeting date, YYYY-MM-DD")
# Declared rather than derived from the path: the <id:...> converter is not one the schema
# generator knows, and would be described as a string.
RACE_ID_PARAMETER = OpenApiParameter(
    "race_id",
    {"type": "integer", "format": "int64", "minimum": 1, "maximum": DATABASE_ID_MAX},
    OpenApiParameter.PATH,
    description="the race's id",
)

RACE_NOT_FOUND = OpenApiResponse(ERROR, description="No such race")
PAGE_NOT_FOUND = OpenApiResponse(ERROR, description="No such page (page is not a page number the list has)")
BAD_FILTER = OpenApiResponse(ERROR, description="A query parameter the list cannot filter by; errors says which")


class Unprocessable(ValidationError):
    """A request that follows the schema but does not fit the race: 422, not 400."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "unprocessable"


# --- Meetings ---------------------------------------------------------------------------------


@extend_schema(
    **PUBLIC,
    parameters=[DATE_PARAMETER, OpenApiParameter("venue", str, description="venue name")],
    responses={200: MeetingSerializer(many=True), 400: BAD_FILTER, 404: PAGE_NOT_FOUND},
)
class MeetingList(generics.ListAPIView):
    """List meetings, oldest first, optionally of one date or venue."""

    serializer_class = MeetingSerializer

    def get_queryset(self):
        meetings = Meeting.objects.annotate(race_count=Count("races")).order_by("date", "code")
        if (date := _date_filter(self.request, "date")) is not None:
            meetings = meetings.filter(date=date)
        if venue := _text_filter(self.request, "venue"):
            meetings = meetings.filter(venue__iexact=venue)
        return meetings


@extend_schema(
    **PUBLIC, responses={200: MeetingDetailSerializer, 404: OpenApiResponse(ERROR, description="No such meeting")}
)
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
    ],
    responses={200: RaceSummarySerializer(many=True), 400: BAD_FILTER, 404: PAGE_NOT_FOUND},
    **PUBLIC,
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
        if meeting := _text_filter(self.request, "meeting"):
            races = races.filter(meeting__code=meeting)
        if (race_status := _query_value(self.request, "status")) is not None:
            if race_status not in Race.Status.values:
                raise ValidationError({"status": [f"must be one of {', '.join(Race.Status.values)}."]})
            races = races.filter(status=race_status)
        return races


# The races /api/next-to-go/ lists unless asked for more or fewer: about a tote screen's worth.
NEXT_TO_GO_LIMIT_DEFAULT = 10


@extend_schema(
    parameters=[
        OpenApiParameter(
            "limit",
            int,
            default=NEXT_TO_GO_LIMIT_DEFAULT,
            description=f"how many races, 1 to {NEXT_TO_GO_LIMIT_MAX}",
        )
    ],
    responses={
        200: NextToGoSerializer(many=True),
        400: OpenApiResponse(
            ERROR,
            description=f"limit is not a whole number from 1 to {NEXT_TO_GO_LIMIT_MAX}, or is given twice (errors.limit)",
        ),
    },
    **PUBLIC,
)
class NextToGoList(APIView):
    def get(self, request: Request) -> Response:
        """List the next races to start across all meetings, soonest first (then by meeting and race
        number): every race not yet closed that has a start time, an overdue one included until it
        closes, each with its favourite and its seconds to the start."""
        limit = _count_parameter(request, "limit", default=NEXT_TO_GO_LIMIT_DEFAULT, maximum=NEXT_TO_GO_LIMIT_MAX)
        return Response([race_summary_data(race) for race in races_next_to_go(now=timezone.now(), limit=limit)])


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceDetail(APIView):
    @extend_schema(
        **PUBLIC,
        responses={
            200: OpenApiResponse(
                RaceCardSerializer, description="Exactly initial_state's data: race, starters, starter_count."
            ),
            404: RACE_NOT_FOUND,
        },
    )
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race and its starters, with the names and shapes of initial_state's data."""
        card = race_card_get(race_id=race_id)
        if card is None:
            return race_not_found(race_id)
        return Response(race_card_data(card))


def race_not_found(race_id: int) -> Response:
    """The 404 every race endpoint answers for a race id that names no race."""
    return Response({"detail": f"Race {race_id} does not exist."}, status=status.HTTP_404_NOT_FOUND)


def _refuse_too_many_entries(entries: Any, *, field: str) -> None:
    """Refuse (400) a list longer than any race's field, before each entry is validated: a body of
    40,000 entries is refused for its length alone, however the entries look."""
    if isinstance(entries, list) and len(entries) > MAX_STARTERS:
        raise ValidationError({field: [f"Ensure this field has no more than {MAX_STARTERS} elements."]})


def _field_of(race: Race) -> tuple[set[int], set[int]]:
    """Return the horse ids of the race's runners and of its scratched starters (one query)."""
    runners: set[int] = set()
    scratched: set[int] = set()
    for horse_id, is_scratched in race.starters.values_list("horse_id", "scratched"):
        (scratched if is_scratched else runners).add(horse_id)
    return runners, scratched


def _refuse_what_does_not_fit_the_race(horse_ids: list[int], *, field: str, race: Race, every: bool) -> None:
    """Refuse (422) horses that are not the race's runners (scratched ones among them), horses
    listed twice, more entries than the race has runners, and (``every``) runners left out."""
    runners, scratched = _field_of(race)
    problems = []
    if len(horse_ids) > len(runners):
        problems.append(f"too many entries: {len(horse_ids)}, and race {race.pk} has {len(runners)} runners.")
    if duplicates := sorted(horse_id for horse_id, times in Counter(horse_ids).items() if times > 1):
        problems.append(f"horse {', '.join(map(str, duplicates))} listed more than once.")
    if withdrawn := sorted(set(horse_ids) & scratched):
        problems.append(f"horse {', '.join(map(str, withdrawn))} is scratched.")
    if unknown := sorted(set(horse_ids) - runners - scratched):
        problems.append(f"horse {', '.join(map(str, unknown))} is not a starter in race {race.pk}.")
    if every and (missing := sorted(runners - set(horse_ids))):
        problems.append(
            f"horse {', '.join(map(str, missing))} missing: list every runner (scratched ones left out), "
            "with finished false for those that did not finish."
        )
    if problems:
        raise Unprocessable({field: problems})


# --- Odds -------------------------------------------------------------------------------------


class OddsPost(serializers.Serializer):
    # max_length goes to the ListSerializer that many=True makes (the stubs do not know it).
    odds = HorseOddsSerializer(many=True, allow_empty=False, max_length=MAX_STARTERS)  # type: ignore[call-arg]


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceOdds(generics.GenericAPIView):
    permission_classes = [FeedWriteOrReadOnly]
    serializer_class = OddsSnapshotSerializer

    @extend_schema(
        **PUBLIC,
        parameters=[
            OpenApiParameter(
                "since", OpenApiTypes.DATETIME, description="only snapshots after this time; with its UTC offset"
            )
        ],
        responses={
            200: OddsSnapshotSerializer(many=True),
            400: OpenApiResponse(ERROR, description="since is not a date-time with its offset (errors.since)"),
            404: OpenApiResponse(ERROR, description="No such race, or no such page"),
        },
    )
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's odds history, oldest first (paginated)."""
        get_object_or_404(Race.objects.only("pk"), pk=race_id)
        snapshots = OddsSnapshot.objects.filter(race_id=race_id).order_by("taken_at", "pk")
        if (since := _moment_filter(request, "since")) is not None:
            snapshots = snapshots.filter(taken_at__gt=since)
        page = self.paginate_queryset(snapshots)
        return self.get_paginated_response(OddsSnapshotSerializer(page, many=True).data)

    @extend_schema(
        request=HorseOddsSerializer(many=True),
        responses={
            201: inline_serializer(
                "OddsAccepted",
                {
                    "race_id": serializers.IntegerField(),
                    "timestamp": serializers.DateTimeField(),
                    "odds": HorseOddsSerializer(many=True),
                },
            ),
            **WRITE_ERRORS,
            404: RACE_NOT_FOUND,
            409: OpenApiResponse(ERROR, description="The race is finished"),
            422: OpenApiResponse(ERROR, description="A horse that is not a starter in the race, or listed twice"),
        },
    )
    def post(self, request: Request, race_id: int) -> Response:
        """Push the race's current win odds; stored, then broadcast to its clients as odds_update."""
        race = get_object_or_404(Race.objects.only("pk"), pk=race_id)
        body = request.data if isinstance(request.data, dict) else {"odds": request.data}
        _refuse_too_many_entries(body.get("odds"), field="odds")
        incoming = OddsPost(data=body)
        incoming.is_valid(raise_exception=True)
        odds = [(item["horse_id"], float(item["odds"])) for item in incoming.validated_data["odds"]]
        _refuse_what_does_not_fit_the_race([horse_id for horse_id, _ in odds], field="odds", race=race, every=False)
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


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceOddsLatest(APIView):
    @extend_schema(
        **PUBLIC,
        responses={
            200: OddsSnapshotSerializer,
            404: OpenApiResponse(ERROR, description="No such race, or no odds yet"),
        },
    )
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's latest odds snapshot."""
        snapshot = OddsSnapshot.objects.filter(race_id=race_id).order_by("-taken_at", "-pk").first()
        if snapshot is None:
            if not Race.objects.filter(pk=race_id).exists():
                return race_not_found(race_id)
            return Response({"detail": f"Race {race_id} has no odds yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(OddsSnapshotSerializer(snapshot).data)


# --- Results ----------------------------------------------------------------------------------


class ResultPost(serializers.Serializer):
    results = ResultEntrySerializer(many=True, allow_empty=False, max_length=MAX_STARTERS)  # type: ignore[call-arg]
    official = StrictBooleanField(
        default=True, help_text="false for interim placings (the judges' first call, not yet official)"
    )
    correction = StrictBooleanField(
        default=False, help_text="true to replace an official result (a protest upheld after it, a disqualification)"
    )


def _result_body(race_id: int) -> dict[str, Any]:
    declared = race_result_get(race_id=race_id)
    assert declared is not None, "called once a result is in"
    return _result_as_json(race_id, declared)


def _result_as_json(race_id: int, declared: RaceResult) -> dict[str, Any]:
    return {
        "race_id": race_id,
        "status": declared.status,
        "timestamp": utc_timestamp(declared.declared_at),
        "results": [
            {"horse_id": horse_id, "placing": placing, "finished": placing is not None}
            for horse_id, placing in declared.result
        ],
    }


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceResults(APIView):
    permission_classes = [FeedWriteOrReadOnly]

    @extend_schema(
        **PUBLIC,
        responses={
            200: RaceResultSerializer,
            404: OpenApiResponse(ERROR, description="No such race, or no result yet"),
        },
    )
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's latest result, interim or official (status says which): finishers by
        placing, dead heats together, then non-finishers."""
        declared = race_result_get(race_id=race_id)
        if declared is None:
            if not Race.objects.filter(pk=race_id).exists():
                return race_not_found(race_id)
            return Response({"detail": f"Race {race_id} has no result declared yet."}, status=status.HTTP_404_NOT_FOUND)
        return Response(_result_as_json(race_id, declared))

    @extend_schema(
        request=ResultPost,
        responses={
            201: OpenApiResponse(ResultChangeSerializer, description="Declared"),
            200: OpenApiResponse(ResultChangeSerializer, description="Unchanged (identical re-post) or corrected"),
            **WRITE_ERRORS,
            404: RACE_NOT_FOUND,
            409: OpenApiResponse(
                ResultConflictSerializer,
                description='A different official result is declared: it is in the body; send "correction": true '
                "to replace it. Or (an Error) the race is abandoned, or official when interim placings are posted.",
            ),
            422: OpenApiResponse(
                ERROR,
                description="Horses that are not the race's runners (scratched, or not starters), listed twice or "
                "left out, or placings that are not a ranking (1, 2, 3 ...; a dead heat 1, 1, 3)",
            ),
        },
    )
    def post(self, request: Request, race_id: int) -> Response:
        """Post the race's placings, interim or official (or correct the official ones): stored, then
        broadcast as interim_result or result_update. A race still scheduled or open is closed first
        (race_status); dead heats share a placing."""
        race = get_object_or_404(Race.objects.only("pk"), pk=race_id)
        if isinstance(request.data, dict):
            _refuse_too_many_entries(request.data.get("results"), field="results")
        incoming = ResultPost(data=request.data)
        incoming.is_valid(raise_exception=True)
        placings = {item["horse_id"]: item.get("placing") for item in incoming.validated_data["results"]}
        _refuse_what_does_not_fit_the_race(
            [item["horse_id"] for item in incoming.validated_data["results"]], field="results", race=race, every=True
        )
        if problems := placings_problems(placings):
            raise Unprocessable({"results": problems})
        try:
            change = race_result_record(
                race_id=race.pk,
                placings=placings,
                declared_at=timezone.now(),
                source=OddsSnapshot.Source.FEED,
                correction=incoming.validated_data["correction"],
                official=incoming.validated_data["official"],
                user=request.user,
            )
        except RaceClosedError as closed:
            return Response({"detail": f"{closed}."}, status=status.HTTP_409_CONFLICT)
        except ResultConflictError:
            body = _result_body(race.pk)
            body["detail"] = 'A different result is already declared; send "correction": true to replace it.'
            return Response(body, status=status.HTTP_409_CONFLICT)
        body = _result_body(race.pk)
        body["change"] = change.value
        code = status.HTTP_201_CREATED if change is ResultChange.DECLARED else status.HTTP_200_OK
        return Response(body, status=code)


# --- Status -----------------------------------------------------------------------------------


class StatusPost(serializers.Serializer):
    status = serializers.ChoiceField(choices=Race.Status.choices, help_text="the status to move the race to")
    reason = StrictCharField(required=False, allow_blank=True, max_length=200, default="", help_text="why, if said")
    race_datetime = serializers.DateTimeField(
        required=False,
        help_text="a new start time (a delay), with its offset; for a scheduled or open race, at most 7 days "
        "from its current start (422 if further)",
    )


class RaceStatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Race.Status.choices)
    previous = serializers.ChoiceField(choices=Race.Status.choices)
    race_datetime = LocalDateTimeField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    # The metaclass takes declared fields off the class, so this does not shadow Field.source.
    source = serializers.ChoiceField(choices=Source.choices)  # type: ignore[assignment]
    changed_at = UtcTimestampField()


class RaceStatusSerializer(serializers.Serializer):
    race_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Race.Status.choices)
    race_datetime = LocalDateTimeField(allow_null=True)
    allowed = serializers.ListField(
        child=serializers.ChoiceField(choices=Race.Status.choices), help_text="the statuses it can move to"
    )
    changes = RaceStatusChangeSerializer(many=True, help_text="every move so far, oldest first")
    change = serializers.ChoiceField(choices=["changed", "unchanged"], required=False, help_text="in answer to a post")


def _status_body(race_id: int) -> dict[str, Any]:
    race = Race.objects.only("status", "race_datetime").get(pk=race_id)
    changes = [
        {
            "status": change.status,
            "previous": change.previous,
            "race_datetime": change.race_datetime,
            "reason": change.reason or None,
            "source": change.source,
            "changed_at": change.changed_at,
        }
        for change in race.status_changes.order_by("changed_at", "pk")
    ]
    return RaceStatusSerializer(
        {
            "race_id": race_id,
            "status": race.status,
            "race_datetime": race.race_datetime,
            "allowed": list(lifecycle.NEXT[race.status]),
            "changes": changes,
        }
    ).data


@extend_schema(parameters=[RACE_ID_PARAMETER])
class RaceStatusView(APIView):
    permission_classes = [FeedWriteOrReadOnly]

    @extend_schema(**PUBLIC, responses={200: RaceStatusSerializer, 404: RACE_NOT_FOUND})
    def get(self, request: Request, race_id: int) -> Response:
        """Return the race's status, its start time, where it can move next, and every move so far."""
        get_object_or_404(Race.objects.only("pk"), pk=race_id)
        return Response(_status_body(race_id))

    @extend_schema(
        request=StatusPost,
        responses={
            201: OpenApiResponse(RaceStatusSerializer, description="Moved (or delayed): broadcast as race_status"),
            200: OpenApiResponse(RaceStatusSerializer, description="Unchanged: the race was there already"),
            **WRITE_ERRORS,
            404: RACE_NOT_FOUND,
            409: OpenApiResponse(
                ERROR,
                description="A move the race's status does not allow (allowed lists the ones it does), a closed race "
                "to interim or official (post its placings as a result), or a delay of a race already closed",
            ),
            422: OpenApiResponse(ERROR, description="A start time more than 7 days from the race's current one"),
        },
    )
    def post(self, request: Request, race_id: int) -> Response:
        """Move the race to a status (open, closed, protest, official once its interim placings are in,
        abandoned), or delay its start; stored with who moved it, then broadcast as race_status (and
        result_update when it becomes official)."""
        race = get_object_or_404(Race.objects.only("pk"), pk=race_id)
        incoming = StatusPost(data=request.data)
        incoming.is_valid(raise_exception=True)
        wanted = incoming.validated_data
        try:
            change = race_status_change(
                race_id=race.pk,
                status=wanted["status"],
                reason=wanted["reason"],
                race_datetime=wanted.get("race_datetime"),
                at=timezone.now(),
                actor=Actor(Source.FEED, request.user),
            )
        except TransitionError as refused:
            return Response(
                {"detail": f"{refused}.", "allowed": list(refused.allowed)}, status=status.HTTP_409_CONFLICT
            )
        except RaceClosedError as closed:
            return Response({"detail": f"{closed}."}, status=status.HTTP_409_CONFLICT)
        except ValueError as refused:
            raise Unprocessable({"race_datetime": [f"{refused}."]}) from None
        body = dict(_status_body(race.pk), change=change.value)
        return Response(body, status=status.HTTP_201_CREATED if change is Change.CHANGED else status.HTTP_200_OK)


# --- The field --------------------------------------------------------------------------------


class DriverPost(serializers.Serializer):
    driver_name = StrictCharField(required=False, max_length=100, help_text="the new driver: found by name, or created")
    driver_id = StrictIntegerField(required=False, min_value=1, max_value=DATABASE_ID_MAX, help_text="or their id")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("driver_name" in attrs) == ("driver_id" in attrs):
            raise serializers.ValidationError("give the new driver's driver_name or their driver_id (one of them).")
        return attrs


class StarterChangeSerializer(serializers.Serializer):
    race_id = serializers.IntegerField()
    change = serializers.ChoiceField(choices=[*StarterChange.Change.values, "unchanged"])
    starter = RaceCardStarterSerializer()


HORSE_ID_PARAMETER = OpenApiParameter(
    "horse_id",
    {"type": "integer", "format": "int64", "minimum": 1, "maximum": DATABASE_ID_MAX},
    OpenApiParameter.PATH,
    description="the starter's horse_id (/api/races/{race_id}/)",
)
STARTER_RESPONSES = {
    200: OpenApiResponse(StarterChangeSerializer, description="Unchanged: it was so already"),
    **BODILESS_WRITE_ERRORS,
    404: OpenApiResponse(ERROR, description="No such race, or the horse is not one of its starters"),
    409: OpenApiResponse(ERROR, description="Too late for this change in the race's status"),
}


class _StarterChangeView(APIView):
    permission_classes = [FeedWriteOrReadOnly]
    change: str

    def change_starter(self, race: Race, horse_id: int, request: Request) -> Change:
        raise NotImplementedError

    def post(self, request: Request, race_id: int, horse_id: int) -> Response:
        race = get_object_or_404(Race.objects.only("pk"), pk=race_id)
        starter = get_object_or_404(Starter.objects.only("pk"), race_id=race.pk, horse_id=horse_id)
        try:
            change = self.change_starter(race, horse_id, request)
        except RaceClosedError as closed:
            return Response({"detail": f"{closed}."}, status=status.HTTP_409_CONFLICT)
        body = {
            "race_id": race.pk,
            "change": self.change if change is Change.CHANGED else Change.UNCHANGED.value,
            "starter": starter_card_get(starter_id=starter.pk),
        }
        return Response(body, status=status.HTTP_201_CREATED if change is Change.CHANGED else status.HTTP_200_OK)


@extend_schema(parameters=[RACE_ID_PARAMETER, HORSE_ID_PARAMETER])
class StarterScratch(_StarterChangeView):
    change = StarterChange.Change.SCRATCHED

    @extend_schema(
        request=None,
        responses={
            201: OpenApiResponse(StarterChangeSerializer, description="Scratched: broadcast as starter_update"),
            **STARTER_RESPONSES,
        },
    )
    def post(self, request: Request, race_id: int, horse_id: int) -> Response:
        """Scratch a starter (until the race closes; a late scratching once its market is up): it stays
        on the card, leaves the market and is not in the result."""
        return super().post(request, race_id, horse_id)

    def change_starter(self, race: Race, horse_id: int, request: Request) -> Change:
        return starter_scratch(
            race_id=race.pk, horse_id=horse_id, at=timezone.now(), actor=Actor(Source.FEED, request.user)
        )


@extend_schema(parameters=[RACE_ID_PARAMETER, HORSE_ID_PARAMETER])
class StarterReinstate(_StarterChangeView):
    change = StarterChange.Change.REINSTATED

    @extend_schema(
        request=None,
        responses={
            201: OpenApiResponse(StarterChangeSerializer, description="Reinstated: broadcast as starter_update"),
            **STARTER_RESPONSES,
        },
    )
    def post(self, request: Request, race_id: int, horse_id: int) -> Response:
        """Undo a scratching, before the race's market opens."""
        return super().post(request, race_id, horse_id)

    def change_starter(self, race: Race, horse_id: int, request: Request) -> Change:
        return starter_reinstate(
            race_id=race.pk, horse_id=horse_id, at=timezone.now(), actor=Actor(Source.FEED, request.user)
        )


@extend_schema(parameters=[RACE_ID_PARAMETER, HORSE_ID_PARAMETER])
class StarterDriver(_StarterChangeView):
    change = StarterChange.Change.DRIVER_CHANGED

    @extend_schema(
        request=DriverPost,
        responses={
            201: OpenApiResponse(StarterChangeSerializer, description="A new driver: broadcast as starter_update"),
            **STARTER_RESPONSES,
            **WRITE_ERRORS,
            422: OpenApiResponse(ERROR, description="A driver_id that names no driver"),
        },
    )
    def post(self, request: Request, race_id: int, horse_id: int) -> Response:
        """Give a starter a new driver (until the race closes), by name (found, trimmed and case
        ignored, or created) or by id."""
        return super().post(request, race_id, horse_id)

    def change_starter(self, race: Race, horse_id: int, request: Request) -> Change:
        incoming = DriverPost(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            return starter_driver_change(
                race_id=race.pk,
                horse_id=horse_id,
                driver_name=incoming.validated_data.get("driver_name"),
                driver_id=incoming.validated_data.get("driver_id"),
                at=timezone.now(),
                actor=Actor(Source.FEED, request.user),
            )
        except ValueError as refused:
            raise Unprocessable({"driver_id": [f"{refused}."]}) from None
