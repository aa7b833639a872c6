"""The race office's admin: enter a meeting, its races, and each race's starters."""

from django.contrib import admin
from django.db.models import Count

from races.models import Driver, Horse, Meeting, Race, Starter, Trainer


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


class StarterInline(admin.TabularInline):
    model = Starter
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
