"""What the race office must do next for a race (races.next_action): pure, so every status and
every moment around the start is checked without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from races import lifecycle
from races.next_action import NextAction, next_action_due, time_to_go

START = dt.datetime(2026, 12, 4, 6, 30, tzinfo=dt.UTC)
BEFORE = START - dt.timedelta(minutes=4, seconds=30)


@pytest.mark.parametrize(
    "status, expected",
    [
        (lifecycle.SCHEDULED, NextAction("Open the market", "open")),
        (lifecycle.OPEN, NextAction("Close at start (in 4 min)", "close")),
        (lifecycle.CLOSED, NextAction("Enter interim placings", None)),
        (lifecycle.INTERIM, NextAction("Declare official (or protest)", "official")),
        (lifecycle.PROTEST, NextAction("Decide the protest", None)),
        (lifecycle.OFFICIAL, None),
        (lifecycle.ABANDONED, None),
    ],
)
def test_each_status_before_the_start_has_its_next_action(status, expected):
    assert next_action_due(status=status, start=START, now=BEFORE) == expected


def test_every_status_is_covered():
    after = START + dt.timedelta(minutes=1)
    for status in lifecycle.STATUSES:
        due = next_action_due(status=status, start=START, now=after)
        assert (due is None) == (lifecycle.NEXT[status] == ()), status


@pytest.mark.parametrize("late", [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(hours=3)])
def test_an_open_race_at_or_past_its_start_is_overdue_to_close(late):
    assert next_action_due(status=lifecycle.OPEN, start=START, now=START + late) == NextAction(
        "Overdue: close", "close", overdue=True
    )


def test_a_scheduled_race_past_its_start_is_overdue():
    due = next_action_due(status=lifecycle.SCHEDULED, start=START, now=START + dt.timedelta(minutes=2))

    assert due == NextAction("Overdue: open the market (or close)", "open", overdue=True)


def test_a_race_without_a_start_time_is_never_overdue():
    assert next_action_due(status=lifecycle.SCHEDULED, start=None, now=START) == NextAction("Open the market", "open")
    assert next_action_due(status=lifecycle.OPEN, start=None, now=START) == NextAction("Close at start", "close")


@pytest.mark.parametrize("status", [lifecycle.CLOSED, lifecycle.INTERIM, lifecycle.PROTEST])
def test_after_the_start_the_result_is_due_whatever_the_time(status):
    early = next_action_due(status=status, start=START, now=BEFORE)
    late = next_action_due(status=status, start=START, now=START + dt.timedelta(hours=1))

    assert early == late and early is not None and not early.overdue


@pytest.mark.parametrize(
    "span, said",
    [
        (dt.timedelta(seconds=59), "in under a minute"),
        (dt.timedelta(minutes=1), "in 1 min"),
        (dt.timedelta(minutes=4, seconds=59), "in 4 min"),
        (dt.timedelta(minutes=59, seconds=59), "in 59 min"),
        (dt.timedelta(hours=1, minutes=5), "in 1 h 05 min"),
        (dt.timedelta(hours=23, minutes=59), "in 23 h 59 min"),
        (dt.timedelta(days=2, hours=3), "in 2 d 3 h"),
    ],
)
def test_the_time_to_go_is_said_to_the_minute(span, said):
    assert time_to_go(span) == said
