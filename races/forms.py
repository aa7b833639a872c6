"""
The race office's forms in the admin: what a race-day move asks for (a reason, a new start, a new
driver) before it is confirmed, and the race's page with its starters, whose changes that clients
must hear of (a new driver, the placings) go through races.services rather than the rows' save.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.contrib.admin import widgets
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet

from races import lifecycle
from races.converters import DATABASE_ID_MAX
from races.lifecycle import placings_problems
from races.models import Driver, Race, RaceStatusChange, Starter

# The race office's words for a race's status (the board has its own, for fans).
STATUS_LABELS = {
    lifecycle.SCHEDULED: "Scheduled",
    lifecycle.OPEN: "Open",
    lifecycle.CLOSED: "Closed — racing",
    lifecycle.INTERIM: "Interim",
    lifecycle.PROTEST: "Protest",
    lifecycle.OFFICIAL: "Official",
    lifecycle.ABANDONED: "Abandoned",
}

REASON_MAX_LENGTH = RaceStatusChange._meta.get_field("reason").max_length
# A delay given in minutes is bounded by the most a start may move (the service checks the
# result too); the bound also keeps the arithmetic inside the calendar.
DELAY_MINUTES_MAX = int(lifecycle.START_MOVE_MAX / dt.timedelta(minutes=1))


def status_label(status: str) -> str:
    """Return a status as the race office reads it."""
    return STATUS_LABELS.get(status, status)


def statuses_text(statuses: tuple[str, ...] | list[str]) -> str:
    """Return statuses as the office reads them: "Closed — racing or Abandoned"."""
    labels = [status_label(status) for status in statuses]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


# --- Confirming a move --------------------------------------------------------------------------


class ConfirmForm(forms.Form):
    """A move that needs nothing but the office's yes."""

    def __init__(self, *args: Any, count: int = 1, admin_site: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = count


class ReasonForm(ConfirmForm):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH, required=False, help_text="Sent to clients with the change, and kept with it."
    )


class RequiredReasonForm(ReasonForm):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH, help_text="Sent to clients with the change, and kept with it."
    )


class DelayForm(RequiredReasonForm):
    """A new start: a start time for one race, or minutes later for any number of races."""

    race_datetime = forms.SplitDateTimeField(
        label="New start time",
        required=False,
        widget=widgets.AdminSplitDateTime,
        help_text="In the venue's time zone; for one race at a time.",
    )
    minutes = forms.IntegerField(
        label="Or put back by (minutes)", required=False, min_value=1, max_value=DELAY_MINUTES_MAX
    )
    field_order = ["race_datetime", "minutes", "reason"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        new_start, minutes = cleaned.get("race_datetime"), cleaned.get("minutes")
        if self.errors:
            return cleaned
        if (new_start is None) == (minutes is None):
            raise ValidationError("Give the new start time or how many minutes the start is put back, one of them.")
        if new_start is not None and self.count != 1:
            raise ValidationError(
                "A new start time is for one race at a time; put several races back by a number of minutes."
            )
        return cleaned


class SafeAutocompleteSelect(widgets.AutocompleteSelect):
    """The admin's autocomplete, shown again safely with a posted value that is no id (Django's
    own looks the value up as an id, and a word or an overflowing number fails there)."""

    def optgroups(self, name: str, value: Sequence[str], attrs: dict[str, Any] | None = None) -> list[Any]:
        ids = [v for v in value if str(v).isascii() and str(v).isdigit() and int(v) <= DATABASE_ID_MAX]
        return super().optgroups(name, ids, attrs)


class DriverChangeForm(ConfirmForm):
    """The new driver: one already known (autocomplete), or a name (found, or created if new)."""

    driver = forms.ModelChoiceField(Driver.objects.all(), required=False, label="New driver")
    driver_name = forms.CharField(
        label="Or their name",
        max_length=Driver._meta.get_field("name").max_length,
        required=False,
        help_text="A driver not yet known is added.",
    )

    def __init__(self, *args: Any, admin_site: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, admin_site=admin_site, **kwargs)
        if admin_site is not None:  # the admin's autocomplete, as on a starter's own page
            self.fields["driver"] = forms.ModelChoiceField(
                Driver.objects.all(),
                required=False,
                label="New driver",
                widget=SafeAutocompleteSelect(Starter._meta.get_field("driver"), admin_site),
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        if (cleaned.get("driver") is None) == (not cleaned.get("driver_name")):
            raise ValidationError("Choose the new driver or type their name, one of them.")
        if self.count != 1:
            raise ValidationError("Change the driver of one starter at a time.")
        return cleaned


# --- The race's page ----------------------------------------------------------------------------


class MeetingRaceForm(forms.ModelForm):
    """A race in its meeting's list. Its start moves here only before its market opens (then with
    "Delay start", which tells clients); a race saves only the columns edited here, since this
    request's copy of its status and update numbering may be older than a feed's last write."""

    class Meta:
        model = Race
        fields = ["race_number", "name", "distance_m", "start_type", "gait", "race_datetime"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.status != Race.Status.SCHEDULED and "race_datetime" in self.fields:
            self.fields["race_datetime"].disabled = True

    def save(self, commit: bool = True) -> Race:
        if self.instance._state.adding:
            return super().save(commit)
        if commit and self.changed_data:
            self.instance.save(update_fields=self.changed_data)
        return self.instance


class RaceForm(forms.ModelForm):
    """The race as the office edits it, and how the placings entered on its starters are declared."""

    result_as = forms.ChoiceField(
        label="Declare entered placings as",
        required=False,  # as before this choice: official
        choices=[(lifecycle.OFFICIAL, "Official"), (lifecycle.INTERIM, "Interim")],
        initial=lifecycle.OFFICIAL,
        widget=forms.RadioSelect,
        help_text="Applies when placings are changed below. To make interim placings official as they stand, "
        "use “Declare official” above.",
    )

    class Meta:
        model = Race
        fields = [
            "meeting", "race_number", "name", "race_datetime", "distance_m", "gait", "start_type", "weather",
            "track_condition",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.status == Race.Status.OFFICIAL:
            # An official result is corrected, never made interim again.
            field = cast(forms.ChoiceField, self.fields["result_as"])
            field.choices = [(lifecycle.OFFICIAL, "Official (a correction of the declared result)")]
            field.error_messages["invalid_choice"] = "An official result can be corrected, not made interim again."


STARTER_FIELDS = [
    "race", "runner_number", "barrier", "handicap_m", "horse", "driver", "trainer", "placing", "did_not_finish",
]  # fmt: skip


class StarterForm(forms.ModelForm):
    """A starter entered on its own page: drawn into a race whose market is not yet up (clients are
    told of scratchings and new drivers, never of a new horse)."""

    class Meta:
        model = Starter
        fields = STARTER_FIELDS

    def clean_race(self) -> Race:
        race = self.cleaned_data["race"]
        if race.status != Race.Status.SCHEDULED:
            raise ValidationError(f"Starters are drawn before the market opens: {race} is {status_label(race.status)}.")
        return race


class StarterInlineForm(forms.ModelForm):
    """A starter's row. Its scratching, driver and result change through races.services (numbered,
    logged and sent to clients), so the row's own save writes only the draw: number, barrier,
    handicap, horse and trainer; a new starter is saved whole, as drawn, without a result."""

    SERVICE_FIELDS = ("driver", "placing", "did_not_finish")

    class Meta:
        model = Starter
        fields = STARTER_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.scratched:
            # A scratched starter does not run: no driver to change, no placing.
            for name in self.SERVICE_FIELDS:
                if name in self.fields:
                    self.fields[name].disabled = True

    def save(self, commit: bool = True) -> Starter:
        starter = self.instance
        if starter._state.adding:
            starter.placing, starter.did_not_finish = None, False
            return super().save(commit)
        # Only the columns edited here: this request's copy of the rest (scratching, driver,
        # result) may be older than what a feed wrote meanwhile.
        drawn = [name for name in self.changed_data if name not in self.SERVICE_FIELDS]
        if commit and drawn:
            starter.save(update_fields=drawn)
        return starter


def _horse_id(form: forms.ModelForm) -> int | None:
    horse = form.cleaned_data.get("horse") if "horse" in form.fields else None
    return horse.pk if horse is not None else form.instance.horse_id


def _horse_name(form: forms.ModelForm) -> str:
    horse = form.cleaned_data.get("horse") if "horse" in form.fields else None
    return str(horse if horse is not None else form.instance.horse)


class StarterFormSet(BaseInlineFormSet):
    """
    A race's starters as the office edits them. ``clean`` validates what the services will be asked
    to do and leaves it in ``driver_changes`` (horse id, driver) and ``placings`` (horse id ->
    placing, None for did not finish; None if no placing changed), for the admin to hand to
    races.services once the rows are saved.
    """

    driver_changes: list[tuple[int, Driver]]
    placings: dict[int, int | None] | None

    def clean(self) -> None:
        super().clean()
        self.driver_changes, self.placings = [], None
        status = self._race_status()
        rows = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and _horse_id(form) is not None
        ]
        self._driver_changes_clean(rows, status)
        self._placings_clean([form for form in rows if not form.instance.scratched], status)

    def _race_status(self) -> str:
        race = self.instance
        if race.pk is None:
            return Race.Status.SCHEDULED
        # The admin saves a race in one transaction: locking the race's row here, as the services
        # do first, orders this request with a feed's writes, so what is checked stays true until
        # the services write it.
        with transaction.atomic():
            return Race.objects.select_for_update().values_list("status", flat=True).get(pk=race.pk)

    def _driver_changes_clean(self, rows: list[forms.ModelForm], status: str) -> None:
        problems = []
        for form in rows:
            if form.instance._state.adding or "driver" not in form.changed_data:
                continue
            driver = form.cleaned_data.get("driver")
            if driver is None:
                problems.append(f"{_horse_name(form)}: a driver is changed for another, not removed; choose one.")
            elif status not in lifecycle.TAKES_DRIVER_CHANGES:
                problems.append(
                    f"{_horse_name(form)}: too late to change the driver, the race is {status_label(status)}."
                )
            else:
                horse_id = _horse_id(form)
                assert horse_id is not None
                self.driver_changes.append((horse_id, driver))
        if problems:
            raise ValidationError(problems)

    def _placings_clean(self, runners: list[forms.ModelForm], status: str) -> None:
        """Refuse a half-entered or inconsistent result: all runners placed or DNF, ranked 1, 2, 3
        (dead heats 1, 1, 3); a declared result is corrected, never withdrawn."""
        if not any({"placing", "did_not_finish"} & set(form.changed_data) for form in runners):
            return
        rows = [
            (form, form.cleaned_data.get("placing"), bool(form.cleaned_data.get("did_not_finish"))) for form in runners
        ]
        if status == Race.Status.ABANDONED:
            raise ValidationError("An abandoned race has no result.")
        if not any(placing or did_not_finish for _, placing, did_not_finish in rows):
            if status in lifecycle.HAS_PLACINGS:
                raise ValidationError(
                    f"The race's result is {status_label(status)}: it can be corrected, not withdrawn. "
                    "Enter the placings again, or abandon the race."
                )
            return
        unplaced = [_horse_name(form) for form, placing, did_not_finish in rows if not placing and not did_not_finish]
        if unplaced:
            raise ValidationError(
                f"A result needs every starter placed or marked did-not-finish: {', '.join(unplaced)} has neither."
            )
        both = [_horse_name(form) for form, placing, did_not_finish in rows if placing and did_not_finish]
        if both:
            raise ValidationError(f"A starter that did not finish has no placing: {', '.join(both)}.")
        placings = {
            horse_id: None if did_not_finish else placing
            for form, placing, did_not_finish in rows
            if (horse_id := _horse_id(form)) is not None  # always: rows without a horse are left out
        }
        if problems := placings_problems(placings):
            raise ValidationError(problems)
        self.placings = placings
