"""
The race office's admin: enter a meeting, its races and each race's starters, and run the race
day. Every move of a race's status (open, close, protest, official, abandon, delay, reset) and
every change to its field (scratch, reinstate, a new driver) is confirmed on a page of its own,
then made by races.services: numbered, recorded with the office's user, sent to clients. What a
race's status refuses is refused per race, with a message saying what it allows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import BaseModelAdmin, IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join

from races import lifecycle
from races.admin_race_day import race_day_urls, race_live_state_get
from races.converters import DATABASE_ID_MAX
from races.exports.admin import EXPORT_ACTIONS
from races.forms import (
    ConfirmForm,
    DelayForm,
    DriverChangeForm,
    MeetingRaceForm,
    RaceForm,
    ReasonForm,
    RequiredReasonForm,
    SafeAutocompleteSelect,
    StarterForm,
    StarterFormSet,
    StarterInlineForm,
    status_label,
    statuses_text,
)
from races.models import Driver, Horse, Meeting, Race, RaceStatusChange, Source, Starter, StarterChange, Trainer
from races.racecard.admin import RacecardAdminMixin
from races.services import (
    Actor,
    Change,
    RaceClosedError,
    ResultChange,
    TransitionError,
    race_reset,
    race_result_make_official,
    race_result_record,
    race_start_delay,
    race_status_change,
    starter_driver_change,
    starter_reinstate,
    starter_scratch,
)

__all__ = ["RaceAdmin", "StarterFormSet", "race_admin_action_add"]


# --- Race-day moves, confirmed ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preview:
    """What a move will do to one object as it stands; the service decides when it is made."""

    outcome: str
    refusal: str | None = None  # why it will be refused
    changes: bool = True  # False: the object is so already


@dataclass(frozen=True)
class Move:
    """A race-day move the office confirms before races.services makes it, for each object chosen."""

    name: str  # in its URL (<id>/race-day/<name>/)
    label: str  # the button's words
    question: str  # what the confirmation page asks
    done: str  # the message once made: "<done>: <objects>."
    preview: Callable[[Any], Preview]
    # Make it (may raise TransitionError, RaceClosedError, ValueError): (object, the form's data,
    # actor, now) -> whether it changed anything.
    apply: Callable[[Any, dict[str, Any], Actor, dt.datetime], Change]
    form_class: type[ConfirmForm] = ConfirmForm


def refusal_text(refused: Exception) -> str:
    """Return why a service refused, as the office reads it: a move a status does not allow names
    the moves it does."""
    if isinstance(refused, TransitionError):
        current = status_label(refused.current)
        if not refused.allowed:
            return f"it is {current}, and its day is over: its status can change no more"
        return f"it is {current}, and can only become {statuses_text(refused.allowed)}"
    return str(refused)


def _status_preview(status: str) -> Callable[[Race], Preview]:
    def preview(race: Race) -> Preview:
        if race.status == status:
            return Preview(f"already {status_label(status)}: nothing changes", changes=False)
        try:
            lifecycle.transition_check(race.status, status)
        except TransitionError as refused:
            return Preview("", refusal=refusal_text(refused))
        return Preview(f"becomes {status_label(status)}")

    return preview


def _status_apply(status: str) -> Callable[[Race, dict[str, Any], Actor, dt.datetime], Change]:
    def apply(race: Race, data: dict[str, Any], actor: Actor, at: dt.datetime) -> Change:
        return race_status_change(race_id=race.pk, status=status, reason=data.get("reason", ""), at=at, actor=actor)

    return apply


def _official_preview(race: Race) -> Preview:
    if race.status == Race.Status.OFFICIAL:
        return Preview("already Official: nothing changes", changes=False)
    if race.status in (Race.Status.INTERIM, Race.Status.PROTEST):
        return Preview("its interim placings become its official result")
    if race.status == Race.Status.CLOSED:
        return Preview("", refusal="it has no placings yet: enter them on the race's page")
    return Preview("", refusal=refusal_text(TransitionError(race.status, Race.Status.OFFICIAL)))


def _delay_preview(race: Race) -> Preview:
    if race.status not in lifecycle.TAKES_DELAYS:
        return Preview("", refusal=f"it is {status_label(race.status)}: its start can no longer move")
    return Preview("its start moves; its status stays")


def _delay_apply(race: Race, data: dict[str, Any], actor: Actor, at: dt.datetime) -> Change:
    minutes = data.get("minutes")
    return race_start_delay(
        race_id=race.pk,
        race_datetime=data.get("race_datetime"),
        by=dt.timedelta(minutes=minutes) if minutes else None,
        reason=data["reason"],
        at=at,
        actor=actor,
    )


def _reset_apply(race: Race, data: dict[str, Any], actor: Actor, at: dt.datetime) -> Change:
    race_reset(race_id=race.pk)
    return Change.CHANGED


RACE_MOVES = {
    move.name: move
    for move in [
        Move(
            name="open",
            label="Open market",
            question="Open the market of these races? Odds are published from then on, and a scratching is late.",
            done="Market opened",
            preview=_status_preview(Race.Status.OPEN),
            apply=_status_apply(Race.Status.OPEN),
        ),
        Move(
            name="close",
            label="Close: they're racing",
            question="Close these races? They are racing: no more odds, scratchings, driver changes or delays.",
            done="Closed — racing",
            preview=_status_preview(Race.Status.CLOSED),
            apply=_status_apply(Race.Status.CLOSED),
        ),
        Move(
            name="protest",
            label="Protest",
            question="Lodge a protest against the interim placings of these races?",
            done="Under protest",
            preview=_status_preview(Race.Status.PROTEST),
            apply=_status_apply(Race.Status.PROTEST),
            form_class=ReasonForm,
        ),
        Move(
            name="official",
            label="Declare official",
            question="Declare the interim placings of these races official, as they stand (or a protest dismissed)?",
            done="Declared official",
            preview=_official_preview,
            apply=lambda race, data, actor, at: race_result_make_official(
                race_id=race.pk, reason=data.get("reason", ""), at=at, actor=actor
            ),
            form_class=ReasonForm,
        ),
        Move(
            name="abandon",
            label="Abandon",
            question="Abandon these races? Their markets stop, interim placings are cleared and they have no result.",
            done="Abandoned",
            preview=_status_preview(Race.Status.ABANDONED),
            apply=_status_apply(Race.Status.ABANDONED),
            form_class=RequiredReasonForm,
        ),
        Move(
            name="delay",
            label="Delay start",
            question="Move the start of these races?",
            done="Start moved",
            preview=_delay_preview,
            apply=_delay_apply,
            form_class=DelayForm,
        ),
        Move(
            name="reset",
            label="Reset",
            question="Reset these races? Their result, scratchings, odds history and race-day log are cleared, "
            "they are Scheduled again, and their clients start afresh.",
            done="Reset",
            preview=lambda race: Preview("back to Scheduled, cleared"),
            apply=_reset_apply,
        ),
    ]
}


def _scratch_preview(starter: Starter) -> Preview:
    if starter.scratched:
        return Preview("already scratched: nothing changes", changes=False)
    status = starter.race.status
    if status not in lifecycle.TAKES_SCRATCHINGS:
        return Preview("", refusal=f"too late: the race is {status_label(status)}")
    return Preview("a late scratching (the market is up)" if status == Race.Status.OPEN else "scratched")


def _reinstate_preview(starter: Starter) -> Preview:
    if not starter.scratched:
        return Preview("not scratched: nothing changes", changes=False)
    status = starter.race.status
    if status not in lifecycle.TAKES_REINSTATEMENTS:
        return Preview("", refusal=f"a scratching stands once the market is up: the race is {status_label(status)}")
    return Preview("runs again")


def _driver_preview(starter: Starter) -> Preview:
    status = starter.race.status
    if starter.scratched:
        return Preview("", refusal="it is scratched: it has no driver to change")
    if status not in lifecycle.TAKES_DRIVER_CHANGES:
        return Preview("", refusal=f"too late: the race is {status_label(status)}")
    return Preview("gets the driver below")


def _driver_apply(starter: Starter, data: dict[str, Any], actor: Actor, at: dt.datetime) -> Change:
    driver: Driver | None = data.get("driver")
    return starter_driver_change(
        race_id=starter.race_id,
        horse_id=starter.horse_id,
        driver_id=driver.pk if driver is not None else None,
        driver_name=data.get("driver_name") or None,
        at=at,
        actor=actor,
    )


STARTER_MOVES = {
    move.name: move
    for move in [
        Move(
            name="scratch",
            label="Scratch",
            question="Scratch these starters? They stay on the card, leave the market and are not in the result.",
            done="Scratched",
            preview=_scratch_preview,
            apply=lambda starter, data, actor, at: starter_scratch(
                race_id=starter.race_id, horse_id=starter.horse_id, at=at, actor=actor
            ),
        ),
        Move(
            name="reinstate",
            label="Reinstate",
            question="Reinstate these scratched starters? They run again.",
            done="Reinstated",
            preview=_reinstate_preview,
            apply=lambda starter, data, actor, at: starter_reinstate(
                race_id=starter.race_id, horse_id=starter.horse_id, at=at, actor=actor
            ),
        ),
        Move(
            name="driver",
            label="Change driver",
            question="Give this starter a new driver?",
            done="Driver changed",
            preview=_driver_preview,
            apply=_driver_apply,
            form_class=DriverChangeForm,
        ),
    ]
}


class RaceDayAdmin(admin.ModelAdmin):
    """An admin whose race-day moves are offered as actions on its list and as pages of their own
    (<id>/race-day/<move>/, linked from a race's page), each confirmed before it is made."""

    race_day_moves: dict[str, Move] = {}

    def race_day_describe(self, obj: Any) -> str:
        """Return how the object stands now, for the confirmation page."""
        raise NotImplementedError

    def race_day_return_url(self, obj: Any) -> str:
        """Return where the office goes back to from an object's own move page."""
        raise NotImplementedError

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/race-day/<str:move>/",
                self.admin_site.admin_view(self.race_day_view),
                name="{}_{}_race_day".format(*info),
            ),
            *super().get_urls(),
        ]

    def race_day_url(self, obj: Any, move: str) -> str:
        return self._url("race_day", obj.pk, move)

    def _url(self, view: str, *args: Any) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}", args=args)

    def race_day_view(self, request: HttpRequest, object_id: str, move: str) -> HttpResponse:
        """One object's move: its confirmation page, then the move and back to the object."""
        chosen = self.race_day_moves.get(move)
        if chosen is None:
            raise Http404(f"No race-day move “{move}”.")
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            self.message_user(request, f"There is no {self.opts.verbose_name} “{object_id}”.", messages.WARNING)
            return HttpResponseRedirect(self._url("changelist"))
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        response = self.race_day_confirm(request, [obj], chosen, action=None)
        return response or HttpResponseRedirect(self.race_day_return_url(obj))

    def race_day_confirm(
        self, request: HttpRequest, objects: list[Any], move: Move, *, action: str | None
    ) -> TemplateResponse | None:
        """Return the move's confirmation page for ``objects``, or, confirmed, make it for each and
        return None."""
        confirmed = request.method == "POST" and "post" in request.POST
        form = move.form_class(request.POST if confirmed else None, count=len(objects), admin_site=self.admin_site)
        if confirmed and form.is_valid():
            self.race_day_apply(request, objects, move, form.cleaned_data)
            return None
        items = [{"object": obj, "now": self.race_day_describe(obj), "preview": move.preview(obj)} for obj in objects]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{move.label}: are you sure?",
            "opts": self.opts,
            "question": move.question,
            "items": items,
            "objects": objects,
            "form": form if form.fields else None,
            "can_confirm": any(item["preview"].refusal is None for item in items),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": self.race_day_return_url(objects[0]) if action is None else self._url("changelist"),
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/races/race_day_confirmation.html", context)

    def race_day_apply(self, request: HttpRequest, objects: list[Any], move: Move, data: dict[str, Any]) -> None:
        """Make the move for each object, each on its own: one refused leaves the others' moves made."""
        actor, now = Actor(Source.ADMIN, request.user), timezone.now()
        changed: list[str] = []
        unchanged: list[str] = []
        for obj in objects:
            try:
                change = move.apply(obj, data, actor, now)
            except (TransitionError, RaceClosedError, ValueError) as refused:
                self.message_user(request, f"{obj} not changed: {refusal_text(refused)}.", messages.ERROR)
            else:
                (changed if change is Change.CHANGED else unchanged).append(str(obj))
        if changed:
            self.message_user(request, f"{move.done}: {'; '.join(changed)}.", messages.SUCCESS)
        if unchanged:
            self.message_user(request, f"Nothing to change for {'; '.join(unchanged)}: already so.", messages.WARNING)

    def response_action(self, request: HttpRequest, queryset):
        # The selection is a list of ids typed into a form anyone can post: a value that is no id
        # is refused here, not left to the database (a 500, or an overflow in SQLite).
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                pk = self.opts.pk.to_python(value)
            except ValidationError:
                pk = None
            if not isinstance(pk, int) or not 1 <= pk <= DATABASE_ID_MAX:
                self.message_user(
                    request, f"“{value}” is not one of the list's ids: nothing was changed.", messages.ERROR
                )
                return None
        return super().response_action(request, queryset)


def _race_day_action(move: Move) -> Callable:
    def action(modeladmin: RaceDayAdmin, request: HttpRequest, queryset) -> TemplateResponse | None:
        objects = list(queryset)
        if not objects:
            modeladmin.message_user(
                request, "None of the chosen ids is in the list: nothing was changed.", messages.ERROR
            )
            return None
        return modeladmin.race_day_confirm(request, objects, move, action=action.__name__)

    action.__name__ = f"race_day_{move.name}"
    return admin.action(description=f"{move.label}…", permissions=["change"])(action)


class SafeAutocomplete(BaseModelAdmin):
    """Autocomplete fields that show a posted value that is no id as a form error, not a 500."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.get_autocomplete_fields(request):
            kwargs.setdefault("widget", SafeAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using")))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --- Meetings -----------------------------------------------------------------------------------


class RaceInline(admin.TabularInline):
    model = Race
    form = MeetingRaceForm
    fields = ["race_number", "name", "distance_m", "start_type", "gait", "race_datetime"]
    extra = 1
    show_change_link = True
    ordering = ["race_number"]


@admin.register(Meeting)
class MeetingAdmin(RacecardAdminMixin, admin.ModelAdmin):
    list_display = ["code", "venue", "date", "race_count"]
    list_filter = ["date", "venue"]
    search_fields = ["code", "venue"]
    date_hierarchy = "date"
    inlines = [RaceInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(race_count=Count("races"))

    @admin.display(description="races", ordering="race_count")
    def race_count(self, meeting: Meeting) -> int:
        return meeting.race_count  # type: ignore[attr-defined]  # annotated by get_queryset


# --- Races --------------------------------------------------------------------------------------


class RaceStatusFilter(admin.SimpleListFilter):
    """A race's status, in the office's words."""

    title = "status"
    parameter_name = "status"
    field_name = "status"

    def lookups(self, request, model_admin):
        return [(status, status_label(status)) for status in lifecycle.STATUSES]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        if self.value() not in lifecycle.STATUSES:
            raise IncorrectLookupParameters(f"no status “{self.value()}”")
        return queryset.filter(**{self.field_name: self.value()})


class StarterRaceStatusFilter(RaceStatusFilter):
    title = "race status"
    parameter_name = "race_status"
    field_name = "race__status"


DRAW_FIELDS = ["runner_number", "barrier", "handicap_m", "horse", "trainer"]


def _field_status(starter: Starter) -> str:
    if not starter.scratched:
        return ""
    return "SCR late" if starter.scratched_late else "SCR"


class StarterInline(SafeAutocomplete, admin.TabularInline):
    """A race's starters. Once the market is up the draw is fixed (the protocol tells clients of
    scratchings and new drivers, not of new horses or barriers); the driver changes until the race
    is closed, through races.services (so clients hear of it); scratchings are made with the row's
    links."""

    model = Starter
    form = StarterInlineForm
    formset = StarterFormSet
    fields = [*DRAW_FIELDS[:4], "driver", "trainer", "placing", "did_not_finish", "race_day"]
    autocomplete_fields = ["horse", "driver", "trainer"]
    extra = 0
    ordering = ["runner_number"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("race", "horse")

    def get_readonly_fields(self, request, obj: Race | None = None):
        readonly = ["race_day"]
        if obj is not None and obj.status != Race.Status.SCHEDULED:
            readonly += DRAW_FIELDS
        if obj is not None and obj.status not in lifecycle.TAKES_DRIVER_CHANGES:
            readonly.append("driver")
        if obj is not None and obj.status == Race.Status.ABANDONED:
            readonly += ["placing", "did_not_finish"]
        return readonly

    def has_add_permission(self, request, obj: Race | None = None) -> bool:
        return super().has_add_permission(request, obj) and (obj is None or obj.status == Race.Status.SCHEDULED)

    def has_delete_permission(self, request, obj: Race | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == Race.Status.SCHEDULED)

    @admin.display(description="race day")
    def race_day(self, starter: Starter) -> str:
        if starter.pk is None:
            return ""
        status = starter.race.status
        links = []
        if starter.scratched and status in lifecycle.TAKES_REINSTATEMENTS:
            links.append(("reinstate", "Reinstate"))
        if not starter.scratched and status in lifecycle.TAKES_SCRATCHINGS:
            links.append(("scratch", "Scratch"))
        if not starter.scratched and status in lifecycle.TAKES_DRIVER_CHANGES:
            links.append(("driver", "Change driver"))
        return format_html(
            "<strong>{}</strong> {}",
            _field_status(starter),
            format_html_join(
                " · ",
                '<a href="{}">{}</a>',
                (
                    (reverse(f"{self.admin_site.name}:races_starter_race_day", args=[starter.pk, name]), text)
                    for name, text in links
                ),
            ),
        )


@admin.register(Race)
class RaceAdmin(SafeAutocomplete, RaceDayAdmin):
    form = RaceForm
    list_display = [
        "__str__",
        "meeting",
        "race_number",
        "start",
        "distance_m",
        "gait",
        "start_type",
        "starter_count",
        "status_shown",
    ]
    list_filter = [RaceStatusFilter, "meeting__date", "meeting__venue", "gait", "start_type", "track_condition"]
    search_fields = ["name", "meeting__code", "meeting__venue", "starters__horse__name"]
    list_select_related = ["meeting"]
    autocomplete_fields = ["meeting"]
    date_hierarchy = "race_datetime"
    ordering = ["meeting__date", "meeting__code", "race_number"]
    fieldsets = [
        (None, {"fields": ["meeting", "race_number", "name", "race_datetime", "status_shown", "result_declared_at"]}),
        ("Conditions", {"fields": ["distance_m", "gait", "start_type", "weather", "track_condition"]}),
        ("Result", {"fields": ["result_as"]}),
        ("Race-day log", {"fields": ["race_day_log"], "classes": ["collapse"]}),
    ]
    inlines = [StarterInline]
    readonly_fields = ["status_shown", "result_declared_at", "race_day_log"]
    change_form_template = "admin/races/race/change_form.html"
    race_day_moves = RACE_MOVES
    actions = [*(_race_day_action(move) for move in RACE_MOVES.values()), *EXPORT_ACTIONS]
    # Actions that only the live server can carry out (its "Start simulation"), added by it
    # through race_admin_action_add: the race office sees them beside the domain's own.
    live_actions: list = []

    def get_actions(self, request):
        actions = super().get_actions(request)
        for action in self.live_actions:
            actions[action.__name__] = self.get_action(action)
        return actions

    def get_queryset(self, request):
        # Subqueries, not joins with GROUP BY: the list's counts (of races, for the paginator and
        # the date hierarchy) then leave them out and stay a plain COUNT of races.
        changes = RaceStatusChange.objects.filter(race=OuterRef("pk")).order_by("-seq")
        starters = Starter.objects.filter(race=OuterRef("pk")).order_by().values("race")
        return (
            super()
            .get_queryset(request)
            .annotate(
                starter_count=Coalesce(Subquery(starters.annotate(n=Count("pk")).values("n")), 0),
                scratched_count=Coalesce(
                    Subquery(starters.filter(scratched=True).annotate(n=Count("pk")).values("n")), 0
                ),
                # A change that kept the status moved the start: a delay (races.selectors reads it so too).
                delay_reason=Subquery(changes.filter(status=F("previous")).values("reason")[:1]),
                delayed=Exists(changes.filter(status=F("previous"))),
                status_reason=Subquery(changes.exclude(status=F("previous")).values("reason")[:1]),
            )
        )

    def get_readonly_fields(self, request, obj: Race | None = None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Race.Status.SCHEDULED:
            readonly.append("race_datetime")  # moved with "Delay start", which tells clients
        return readonly

    def get_urls(self):
        return [*race_day_urls(self), *super().get_urls()]

    def race_day_describe(self, race: Race) -> str:
        start = formats.localize(timezone.localtime(race.race_datetime)) if race.race_datetime else "no start"
        return f"{status_label(race.status)}, starts {start}"

    def race_day_return_url(self, race: Race) -> str:
        return self._url("change", race.pk)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_change_permission(request, obj):
            context["race_day_moves"] = [
                {"label": move.label, "url": self.race_day_url(obj, move.name)}
                for move in RACE_MOVES.values()
                if move.name != "reset" and (preview := move.preview(obj)).refusal is None and preview.changes
            ]
        if obj is not None:
            context["race_live"] = race_live_state_get(race_id=obj.pk, now=timezone.now())
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj: Race, form, change: bool) -> None:
        if not change:
            return super().save_model(request, obj, form, change)
        # Only what the office edited: the status, the update numbering and the result are written
        # by races.services under the race's lock, and this request's copy of them may be stale.
        editable = {model_field.name for model_field in obj._meta.concrete_fields}
        obj.save(update_fields=[name for name in form.changed_data if name in editable])

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        for formset in formsets:
            if isinstance(formset, StarterFormSet):
                official = form.cleaned_data.get("result_as") != lifecycle.INTERIM
                self._field_changes_make(request, form.instance, formset, official=official)

    def _field_changes_make(self, request, race: Race, formset: StarterFormSet, *, official: bool) -> None:
        """Hand the starters' new drivers and the placings entered to races.services, once the rows
        are saved: numbered, recorded with the user, and sent to the race's clients on commit."""
        actor, now = Actor(Source.ADMIN, request.user), timezone.now()
        try:
            for horse_id, driver in formset.driver_changes:
                if (
                    starter_driver_change(race_id=race.pk, horse_id=horse_id, driver_id=driver.pk, at=now, actor=actor)
                    is Change.CHANGED
                ):
                    self.message_user(request, f"New driver {driver} sent to the race's live clients.")
            if formset.placings is None:
                return
            result = race_result_record(
                race_id=race.pk,
                placings=formset.placings,
                declared_at=now,
                source=Source.ADMIN,
                official=official,
                correction=True,  # the office edits an official race's placings to correct them
                user=request.user,
            )
        except (TransitionError, RaceClosedError, ValueError) as refused:
            # Checked when the form was validated, under the race's lock: only a bug gets here.
            self.message_user(request, f"Not sent: {refusal_text(refused)}.", messages.ERROR)
            return
        said = {
            ResultChange.DECLARED: "Official result declared" if official else "Interim placings declared",
            ResultChange.CORRECTED: "Official result corrected",
            ResultChange.UNCHANGED: "",
        }[result]
        if said:
            self.message_user(request, f"{said} and sent to the race's live clients.", messages.SUCCESS)

    @admin.display(description="start", ordering="race_datetime")
    def start(self, race: Race) -> str:
        if race.race_datetime is None:
            return "-"
        start = formats.localize(timezone.localtime(race.race_datetime))
        if not getattr(race, "delayed", False):
            return start
        return format_html('{} <strong title="{}">delayed</strong>', start, race.delay_reason or "")  # type: ignore[attr-defined]

    @admin.display(description="status", ordering="status")
    def status_shown(self, race: Race) -> str:
        reason = getattr(race, "status_reason", None)
        if reason and race.status in (Race.Status.PROTEST, Race.Status.ABANDONED):
            return format_html("{} <small>({})</small>", status_label(race.status), reason)
        return status_label(race.status)

    @admin.display(description="starters", ordering="starter_count")
    def starter_count(self, race: Race) -> str:
        count, scratched = race.starter_count, race.scratched_count  # type: ignore[attr-defined]  # annotated by get_queryset
        return f"{count} ({scratched} scr)" if scratched else str(count)

    @admin.display(description="race-day log")
    def race_day_log(self, race: Race) -> str:
        if race.pk is None:
            return "-"
        rows = [
            (change.changed_at, f"{status_label(change.previous)} → {status_label(change.status)}"
             if change.status != change.previous else "start moved", change.reason, change.get_source_display(), change.user or "")
            for change in race.status_changes.select_related("user")
        ]  # fmt: skip
        rows += [
            (change.changed_at, f"{change.starter}: {change.get_change_display().lower()}"
             + (f" ({change.driver_before or 'none'} → {change.driver_after})" if change.change == StarterChange.Change.DRIVER_CHANGED else ""),
             "", change.get_source_display(), change.user or "")
            for change in StarterChange.objects.filter(starter__race=race).select_related(
                "starter__horse", "driver_before", "driver_after", "user"
            )
        ]  # fmt: skip
        if not rows:
            return "-"
        return format_html(
            "<table><thead><tr><th>at</th><th>change</th><th>reason</th><th>by</th><th>user</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (formats.localize(timezone.localtime(at)), what, reason, source, user)
                    for at, what, reason, source, user in sorted(rows, key=lambda row: row[0])
                ),
            ),
        )


# --- People and starters ------------------------------------------------------------------------


class PersonAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Horse)
class HorseAdmin(PersonAdmin):
    pass


@admin.register(Driver)
class DriverAdmin(PersonAdmin):
    pass


@admin.register(Trainer)
class TrainerAdmin(PersonAdmin):
    pass


@admin.register(Starter)
class StarterAdmin(SafeAutocomplete, RaceDayAdmin):
    """Starters across races: scratch, reinstate or change a driver from the list (each confirmed).
    A starter's scratching, driver and result are changed only that way and on its race's page."""

    list_display = [
        "__str__",
        "race",
        "race_status",
        "barrier",
        "handicap_m",
        "driver",
        "trainer",
        "scratching",
        "placing",
        "did_not_finish",
    ]
    list_filter = [
        StarterRaceStatusFilter,
        "scratched",
        "scratched_late",
        "race__meeting__date",
        "race__meeting__venue",
        "race__gait",
        "did_not_finish",
    ]
    search_fields = ["horse__name", "driver__name", "trainer__name", "race__meeting__code"]
    list_select_related = ["race__meeting", "horse", "driver", "trainer"]
    autocomplete_fields = ["race", "horse", "driver", "trainer"]
    fields = ["race", *DRAW_FIELDS[:4], "driver", "trainer", "scratching", "placing", "did_not_finish"]
    form = StarterForm
    race_day_moves = STARTER_MOVES
    actions = [_race_day_action(move) for move in STARTER_MOVES.values()]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("race__meeting", "horse", "driver")

    def get_readonly_fields(self, request, obj: Starter | None = None):
        readonly = ["scratching", "placing", "did_not_finish"]
        if obj is not None:
            readonly += ["race", "driver"]  # a new driver with "Change driver", which tells clients
            if obj.race.status != Race.Status.SCHEDULED:
                readonly += DRAW_FIELDS
        return readonly

    def save_model(self, request, obj: Starter, form, change: bool) -> None:
        if not change:
            return super().save_model(request, obj, form, change)
        # Only the draw edited here: the scratching, driver and result are the services' to write.
        obj.save(update_fields=[name for name in form.changed_data if name in DRAW_FIELDS])

    def race_day_describe(self, starter: Starter) -> str:
        state = _field_status(starter) or "running"
        return f"{starter.race}, {status_label(starter.race.status)}; {state}; driver {starter.driver or 'none'}"

    def race_day_return_url(self, starter: Starter) -> str:
        return reverse(f"{self.admin_site.name}:races_race_change", args=[starter.race_id])

    @admin.display(description="race status", ordering="race__status")
    def race_status(self, starter: Starter) -> str:
        return status_label(starter.race.status)

    @admin.display(description="scratched", ordering="scratched")
    def scratching(self, starter: Starter) -> str:
        return _field_status(starter)


def race_admin_action_add(action) -> None:
    """Offer ``action`` (an admin action function) on the race list, beside the domain's own."""
    if action not in RaceAdmin.live_actions:
        RaceAdmin.live_actions.append(action)
