"""The racing domain: meetings, their races, and the horses, drivers and trainers who start in them."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from races import lifecycle


def new_updates_epoch() -> str:
    """Return a fresh name for a race's numbering of its updates (see Race.updates_epoch)."""
    return secrets.token_hex(6)


class Meeting(models.Model):
    """One club's race day at one venue, identified by a code such as ``NZ_20260501_AUK``."""

    code = models.CharField(
        max_length=32,
        unique=True,
        help_text="Unique meeting code, e.g. NZ_20260501_AUK (country, date, venue).",
    )
    venue = models.CharField(max_length=100, null=True, blank=True)
    date = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["date", "venue", "code"]

    def __str__(self) -> str:
        parts = [self.venue or self.code]
        if self.date:
            parts.append(self.date.strftime("%a %d %b %Y"))
        return " – ".join(parts)


class Race(models.Model):
    class StartType(models.TextChoices):
        MOBILE = "mobile", "Mobile"
        STANDING = "standing", "Standing"

    class Gait(models.TextChoices):
        PACE = "pace", "Pace"
        TROT = "trot", "Trot"

    class Weather(models.TextChoices):
        FINE = "fine", "Fine"
        OVERCAST = "overcast", "Overcast"
        SHOWERS = "showers", "Showers"
        RAIN = "rain", "Rain"
        WINDY = "windy", "Windy"

    class TrackCondition(models.TextChoices):
        # The ratings New Zealand harness tracks are given on race day.
        FAST = "fast", "Fast"
        GOOD = "good", "Good"
        EASY = "easy", "Easy"
        DEAD = "dead", "Dead"
        SLOW = "slow", "Slow"
        HEAVY = "heavy", "Heavy"

    class Status(models.TextChoices):
        # races.lifecycle says which may follow which.
        SCHEDULED = lifecycle.SCHEDULED, "Scheduled"
        OPEN = lifecycle.OPEN, "Open"  # the market is up: odds are being published
        CLOSED = lifecycle.CLOSED, "Closed"  # they are racing: no more odds
        INTERIM = lifecycle.INTERIM, "Interim"  # placings in, not yet official
        PROTEST = lifecycle.PROTEST, "Protest"  # a protest against the interim placings
        OFFICIAL = lifecycle.OFFICIAL, "Official"  # the result is official
        ABANDONED = lifecycle.ABANDONED, "Abandoned"  # not run, or void: no result

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="races")
    race_number = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200, blank=True)
    distance_m = models.PositiveIntegerField("distance (m)")
    start_type = models.CharField(max_length=10, choices=StartType, null=True, blank=True)
    gait = models.CharField(max_length=10, choices=Gait, null=True, blank=True)
    weather = models.CharField(max_length=20, choices=Weather, null=True, blank=True)
    track_condition = models.CharField(max_length=20, choices=TrackCondition, null=True, blank=True)
    race_datetime = models.DateTimeField(
        "start time", null=True, blank=True, help_text="Scheduled start, in the venue's time zone."
    )
    status = models.CharField(max_length=10, choices=Status, default=Status.SCHEDULED)
    result_declared_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Once a live feed has written odds or a result, the race is the feed's: never simulated.
    fed = models.BooleanField("fed by a live feed", default=False, editable=False)
    # Every update published for the race (odds or result) is numbered 1, 2, 3, ... so that a
    # client can tell whether it missed one and resume after the last it saw. The epoch names
    # this numbering: it changes when the race is reset (the numbers start again), so a seq
    # remembered from an earlier history is never mistaken for one of this history.
    update_seq = models.PositiveBigIntegerField(default=0, editable=False)
    updates_epoch = models.CharField(max_length=16, default=new_updates_epoch, editable=False)

    class Meta:
        ordering = ["meeting__date", "meeting__code", "race_number"]
        permissions = [("feed_race", "Can push odds and results as a live feed")]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "race_number"], name="race_number_unique_in_meeting"),
            models.CheckConstraint(condition=Q(race_number__gte=1), name="race_number_positive"),
            models.CheckConstraint(condition=Q(distance_m__gt=0), name="race_distance_positive"),
        ]

    def __str__(self) -> str:
        label = f"{self.meeting.venue or self.meeting.code} R{self.race_number}"
        if self.name:
            label += f" {self.name}"
        return f"{label} ({self.distance_m} m)"


class NamedRecord(models.Model):
    """A horse, driver or trainer: known on race day by a unique name."""

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Horse(NamedRecord):
    pass


class Driver(NamedRecord):
    pass


class Trainer(NamedRecord):
    pass


class Starter(models.Model):
    """A horse entered in a race, with its driver, trainer and starting position."""

    race = models.ForeignKey(Race, on_delete=models.CASCADE, related_name="starters")
    horse = models.ForeignKey(Horse, on_delete=models.PROTECT, related_name="starts")
    driver = models.ForeignKey(Driver, on_delete=models.SET_NULL, null=True, blank=True, related_name="drives")
    trainer = models.ForeignKey(Trainer, on_delete=models.SET_NULL, null=True, blank=True, related_name="starters")
    runner_number = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Saddlecloth number.")
    barrier = models.PositiveSmallIntegerField(null=True, blank=True)
    handicap_m = models.PositiveSmallIntegerField(
        "handicap (m)",
        null=True,
        blank=True,
        help_text="Metres behind the front line in a standing start; empty for mobile starts.",
    )
    placing = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Final placing, 1 = winner. Dead heats share a placing.",
    )
    did_not_finish = models.BooleanField(default=False)
    # Withdrawn from the race: it stays on the card, leaves the market and is not in the result.
    scratched = models.BooleanField(default=False)
    scratched_late = models.BooleanField(
        "late scratching", default=False, help_text="Scratched after the race's market opened."
    )

    class Meta:
        ordering = ["race", models.F("runner_number").asc(nulls_last=True), "pk"]
        # unique_together rather than UniqueConstraint: admin inline forms exclude the race
        # foreign key from constraint validation, so only unique_together turns a duplicate
        # entered in the race's starters inline into a form error instead of a database error.
        unique_together = [("race", "horse"), ("race", "runner_number")]
        constraints = [
            models.CheckConstraint(
                condition=Q(placing__isnull=True) | Q(placing__gte=1), name="starter_placing_positive"
            ),
            models.CheckConstraint(
                condition=Q(handicap_m__isnull=True) | Q(handicap_m__gte=0),
                name="starter_handicap_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(barrier__isnull=True) | Q(barrier__gte=1), name="starter_barrier_positive"
            ),
            models.CheckConstraint(
                condition=Q(runner_number__isnull=True) | Q(runner_number__gte=1),
                name="starter_runner_number_positive",
            ),
            # A horse that did not finish has no placing; the two fields must never disagree.
            models.CheckConstraint(
                condition=Q(did_not_finish=False) | Q(placing__isnull=True),
                name="starter_dnf_has_no_placing",
            ),
            # A scratched horse did not run: no placing, no did-not-finish.
            models.CheckConstraint(
                condition=Q(scratched=False) | (Q(placing__isnull=True) & Q(did_not_finish=False)),
                name="starter_scratched_has_no_result",
            ),
        ]

    def __str__(self) -> str:
        number = f"#{self.runner_number} " if self.runner_number is not None else ""
        return f"{number}{self.horse.name}"


class OddsSnapshot(models.Model):
    """The win odds of a race's market at one moment, as they were published."""

    class Source(models.TextChoices):
        SIMULATION = "simulation", "Simulation"
        FEED = "feed", "Live feed"

    race = models.ForeignKey(Race, on_delete=models.CASCADE, related_name="odds_snapshots")
    taken_at = models.DateTimeField()
    source = models.CharField(max_length=12, choices=Source)
    # [{"horse_id": 42, "odds": 3.5}, ...] in runner order, exactly as published.
    odds = models.JSONField()
    # How far a simulated market had run, so a simulation stopped for lack of viewers resumes
    # from this market and this point; None for odds from a live feed.
    market_elapsed_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["race", "taken_at", "pk"]
        get_latest_by = ["taken_at", "pk"]
        indexes = [models.Index(fields=["race", "-taken_at"], name="odds_snapshot_race_latest")]

    def __str__(self) -> str:
        return f"{self.race} odds at {self.taken_at:%H:%M:%S}"


class RaceUpdate(models.Model):
    """
    One numbered update of a race, as it was published: the log that a reconnecting client's
    missed updates are replayed from, in order. ``data`` holds what went out, by ``kind``: the
    odds (``[{"horse_id", "odds"}]``), a result, interim or official
    (``[{"horse_id", "placing", "finished"}]``, finishers first), a status change or a starter's
    change.
    """

    class Kind(models.TextChoices):
        ODDS = "odds", "Odds"
        STATUS = "status", "Status"  # data: {"status", "previous", "race_datetime", "reason"}
        STARTER = "starter", "Starter"  # data: {"change", "starter": the starter as on the card}
        INTERIM = "interim", "Interim result"  # data: as a result
        RESULT = "result", "Official result"

    race = models.ForeignKey(Race, on_delete=models.CASCADE, related_name="updates")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind)
    published_at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        ordering = ["race", "seq"]
        constraints = [models.UniqueConstraint(fields=["race", "seq"], name="race_update_seq_unique")]

    def __str__(self) -> str:
        return f"{self.race_id} #{self.seq} {self.kind}"


class Source(models.TextChoices):
    """Who made a change to a race: kept with every status change and starter change."""

    FEED = "feed", "Live feed"
    ADMIN = "admin", "Race office"
    SIMULATION = "simulation", "Simulation"


class RaceStatusChange(models.Model):
    """A race's move to a status (or a new start time), who made it, and why."""

    race = models.ForeignKey(Race, on_delete=models.CASCADE, related_name="status_changes")
    seq = models.PositiveBigIntegerField(help_text="The update number it went out as.")
    status = models.CharField(max_length=10, choices=Race.Status)
    previous = models.CharField(max_length=10, choices=Race.Status)
    race_datetime = models.DateTimeField("start time", null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=12, choices=Source)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["race", "changed_at", "pk"]

    def __str__(self) -> str:
        return f"{self.race_id}: {self.previous} -> {self.status}"


class StarterChange(models.Model):
    """A change to a race's field after it was drawn: a scratching, a reinstatement, a new driver."""

    class Change(models.TextChoices):
        SCRATCHED = "scratched", "Scratched"
        REINSTATED = "reinstated", "Reinstated"
        DRIVER_CHANGED = "driver_changed", "Driver changed"

    starter = models.ForeignKey(Starter, on_delete=models.CASCADE, related_name="changes")
    seq = models.PositiveBigIntegerField(help_text="The update number it went out as.")
    change = models.CharField(max_length=16, choices=Change)
    driver_before = models.ForeignKey(Driver, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    driver_after = models.ForeignKey(Driver, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    source = models.CharField(max_length=12, choices=Source)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["starter", "changed_at", "pk"]

    def __str__(self) -> str:
        return f"{self.starter}: {self.change}"
