"""The race office's admin: enter a meeting, its races, and each race's starters."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.utils import timezone

from races.models import Driver, Horse, Meeting, Race, Starter, Trainer
from races.services import placings_problems, race_reset, race_result_declare_entered


class RaceInline(admin.TabularInline):
    model = Race
    fields = ["race_number", "name", "distance_m", "start_type", "gait", "race_datetime"]
    extra = 1
    show_change_link = True
    ordering = ["race_number"]


@admin.register(Meeting)
class MeetingAdmin(admin.ModelAdmin):
    list_display = ["code", "venue", "date", "race_count"]
    list_filter = ["date", "venue"]
    search_fields = ["code", "venue"]
    date_hierarchy = "date"
    inlines = [RaceInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(race_count=Count("races"))

    @admin.display(description="races", ordering="race_count")
    def race_count(self, meeting: Meeting) -> int:
        return meeting.race_count


class StarterFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """Refuse a half-entered or inconsistent result: all starters placed or DNF, 1..k."""
        super().clean()
        rows = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("horse")
        ]
        if not any(row.get("placing") or row.get("did_not_finish") for row in rows):
            return
        unplaced = [row["horse"].name for row in rows if not row.get("placing") and not row.get("did_not_finish")]
        if unplaced:
            raise ValidationError(
                f"A result needs every starter placed or marked did-not-finish: {', '.join(unplaced)} "
                "has neither."
            )
        both = [row["horse"].name for row in rows if row.get("placing") and row.get("did_not_finish")]
        if both:
            raise ValidationError(f"A starter that did not finish has no placing: {', '.join(both)}.")
        problems = placings_problems(
            {row["horse"].pk: None if row.get("did_not_finish") else row.get("placing") for row in rows}
        )
        if problems:
            raise ValidationError(problems)


class StarterInline(admin.TabularInline):
    model = Starter
    formset = StarterFormSet
    fields = [
        "runner_number",
        "barrier",
        "handicap_m",
        "horse",
        "driver",
        "trainer",
        "placing",
        "did_not_finish",
    ]
    autocomplete_fields = ["horse", "driver", "trainer"]
    extra = 0
    ordering = ["runner_number"]


@admin.register(Race)
class RaceAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "meeting",
        "race_number",
        "race_datetime",
        "distance_m",
        "gait",
        "start_type",
        "starter_count",
        "status",
    ]
    list_filter = ["status", "meeting__date", "meeting__venue", "gait", "start_type", "track_condition"]
    search_fields = ["name", "meeting__code", "meeting__venue", "starters__horse__name"]
    list_select_related = ["meeting"]
    autocomplete_fields = ["meeting"]
    date_hierarchy = "race_datetime"
    ordering = ["meeting__date", "meeting__code", "race_number"]
    fieldsets = [
        (None, {"fields": ["meeting", "race_number", "name", "race_datetime", "status", "result_declared_at"]}),
        ("Conditions", {"fields": ["distance_m", "gait", "start_type", "weather", "track_condition"]}),
    ]
    inlines = [StarterInline]
    readonly_fields = ["status", "result_declared_at"]
    actions = ["reset_races"]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        result_edited = any(
            {"placing", "did_not_finish"} & set(inline_form.changed_data)
            for formset in formsets
            if formset.model is Starter
            for inline_form in formset.forms
        )
        if result_edited:
            # Clients of the race get the result once this request's transaction commits.
            if race_result_declare_entered(race_id=form.instance.pk, declared_at=timezone.now()):
                self.message_user(request, "Result declared and sent to the race's live clients.")

    @admin.action(description="Reset: clear result and odds history")
    def reset_races(self, request, queryset) -> None:
        for race in queryset:
            race_reset(race_id=race.pk)
        self.message_user(request, f"Reset {queryset.count()} race(s).", messages.SUCCESS)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(starter_count=Count("starters", distinct=True))

    @admin.display(description="starters", ordering="starter_count")
    def starter_count(self, race: Race) -> int:
        return race.starter_count


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
class StarterAdmin(admin.ModelAdmin):
    list_display = ["__str__", "race", "barrier", "handicap_m", "driver", "trainer", "placing", "did_not_finish"]
    list_filter = ["race__meeting__date", "race__meeting__venue", "race__gait", "did_not_finish"]
    search_fields = ["horse__name", "driver__name", "trainer__name", "race__meeting__code"]
    list_select_related = ["race__meeting", "horse", "driver", "trainer"]
    autocomplete_fields = ["race", "horse", "driver", "trainer"]
