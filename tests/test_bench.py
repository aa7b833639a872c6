"""The benchmark keeps working: a seconds-long smoke run (the full run is `make bench`), and the
meeting scenario's check of the one-second rule counts what it says it counts."""

import datetime as dt
import json
import subprocess
import sys

import pytest

from bench.meeting import (
    FAVOURITE_BASE,
    MAX_ODDS_UPDATES,
    Publication,
    meeting_odds,
    meeting_plan,
    summary_rule_report,
    summary_version,
)
from tests.servers import REPO_DIR


@pytest.mark.e2e
def test_the_smoke_benchmark_delivers_everything_to_project_and_baseline_and_a_meeting(tmp_path):
    report_path = tmp_path / "bench.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(report_path)],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    race, meeting = report["results"]
    servers = {m["server"].split(" ")[0]: m for m in race["measurements"]}
    assert set(servers) == {"project", "baseline"}
    for measurement in servers.values():
        assert measurement["connected"] == measurement["clients"] == 50
        assert measurement["delivered"] == measurement["expected"] == 250
        assert measurement["p99_ms"] > 0
    assert report["queries_per_connect"] == 2
    assert "| smoke: memory, 50 clients | project" in done.stdout
    [followed] = meeting["measurements"]
    summaries = followed["summaries"]
    assert followed["connected"] == 50 and followed["failures"] == []
    assert followed["delivered"] == followed["expected"] > 0  # every client had every summary
    assert summaries["urgent_publications"] == 40  # two delays, a close and a result per race
    violations = summaries["violations"]
    assert violations["lost"] == violations["out_of_order"] == violations["inconsistent"] == 0
    [comparison] = report["comparisons"]
    assert comparison["compared_with"] == race["scenario"] and comparison["p99_ratio"] > 0


def test_a_short_soak_run_loses_nothing_and_returns_to_its_baseline(tmp_path):
    report_path = tmp_path / "soak.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration-s", "30", "--json", str(report_path)],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["lost_updates"] == 0 and report["problems"] == []
    assert report["races"] >= 6 and report["updates_checked"] > 500
    assert report["bad_inputs_answered"] == sum(report["bad_inputs"].values()) > 0
    if report["processes"] == 2:  # with redis-server installed: both kinds of fault were injected
        assert all(count >= 1 for count in report["faults"].values())


# --- The meeting scenario's plan and check (pure, no servers) ----------------------------------

START = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)


def summary(*, odds_updates: int, delays: int = 0, status: str = "open") -> dict:
    """A race's summary as the server sends it after the plan's updates."""
    odds = meeting_odds(list(range(100, 110)), odds_updates)
    best = min(odds, key=lambda entry: entry["odds"])
    return {
        "favourite": {"horse_id": best["horse_id"], "odds": best["odds"]},
        "race_datetime": (START + delays * dt.timedelta(minutes=2))
        .astimezone(dt.timezone(dt.timedelta(hours=13)))
        .isoformat(),
        "status": status,
    }


def test_a_summary_says_how_many_of_the_plans_updates_it_reflects():
    for k in range(MAX_ODDS_UPDATES + 1):
        odds = sorted(entry["odds"] for entry in meeting_odds(list(range(100, 110)), k))
        assert odds[0] == round(FAVOURITE_BASE + k / 100, 2) < odds[1]  # the favourite carries k

    assert summary_version(summary(odds_updates=0), scheduled_at=START) == 0
    assert summary_version(summary(odds_updates=7, delays=2), scheduled_at=START) == 9
    assert summary_version(summary(odds_updates=7, delays=2, status="official"), scheduled_at=START) == 11


def test_the_plan_moves_every_race_then_closes_it_and_declares_it():
    plan = meeting_plan([10, 11, 12], duration_s=20)

    assert [step.at_s for step in plan] == sorted(step.at_s for step in plan)
    for race_id in (10, 11, 12):
        kinds = [step.kind for step in plan if step.race_id == race_id]
        numbers = [step.number for step in plan if step.race_id == race_id and step.kind == "odds"]
        assert kinds[-2:] == ["close", "result"] and kinds.count("delay") == 2
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 5


def receipts(*races: tuple[int, list[int], list[float]]) -> dict:
    return {race_id: (versions, times) for race_id, versions, times in races}


def test_summaries_that_keep_the_one_second_rule_count_no_violation():
    publications = [
        Publication(1, 1, 10.0, urgent=False),  # at once: 10.05
        Publication(1, 2, 10.3, urgent=False),  # waits for the second: 11.05
        Publication(1, 3, 10.6, urgent=False),  # ... superseded by the same summary
        Publication(1, 4, 11.5, urgent=True),  # a status change: at once, 11.55
    ]
    clients = [receipts((1, [1, 3, 4], [10.05, 11.05, 11.55])), receipts((1, [1, 3, 4], [10.08, 11.09, 11.6]))]

    report = summary_rule_report(publications, clients)

    assert report["violations"] == {"lost": 0, "late": 0, "too_soon": 0, "out_of_order": 0, "inconsistent": 0}
    assert report["deliveries"] == 8 and report["summaries_sent"] == 3
    assert report["latency_by_kind_ms"]["urgent"]["max"] == 100.0  # 11.6 - 11.5
    assert report["latency_by_kind_ms"]["odds_at_once"]["max"] == 80.0  # 10.08 - 10.0
    # Waiting for the race's second: from 10.05 + 1 (its previous summary's first arrival).
    assert report["latency_by_kind_ms"]["odds_after_window"]["max"] == 40.0  # 11.09 - 11.05


PUBLISHED = [
    Publication(1, 1, 10.0, urgent=False),
    Publication(1, 2, 10.2, urgent=False),
    Publication(1, 3, 12.0, urgent=False),
    Publication(1, 4, 14.0, urgent=True),
]
# The status change twice (its event came after the read that sent it).
ON_TIME = receipts((1, [1, 2, 3, 4, 4], [10.01, 11.02, 12.01, 14.01, 14.05]))


@pytest.mark.parametrize(
    ("client", "violations"),
    [
        # Never had the status change (and so not everyone's summaries).
        (receipts((1, [1, 2, 3], [10.01, 11.02, 12.01])), {"lost": 1, "inconsistent": 1}),
        # Had the odds of 12.0 at 12.9: 0.9 s after they could go.
        (receipts((1, [1, 2, 3, 4, 4], [10.01, 11.02, 12.9, 14.01, 14.05])), {"late": 1}),
        # Odds 0.39 s after odds.
        (receipts((1, [1, 2, 3, 4, 4], [10.01, 10.4, 12.01, 14.01, 14.05])), {"too_soon": 1}),
        # Back to older odds at 12.01, and so without those of 12.0 until the status change.
        (
            receipts((1, [1, 3, 2, 4, 4], [10.01, 11.02, 12.01, 14.01, 14.05])),
            {"out_of_order": 1, "late": 1, "inconsistent": 1},
        ),
        # Missed the summary of 10.2's odds, and had them only with those of 12.0.
        (receipts((1, [1, 3, 4, 4], [10.01, 12.01, 14.01, 14.05])), {"late": 1, "inconsistent": 1}),
    ],
)
def test_a_summary_that_breaks_the_rule_is_counted_as_what_it_broke(client, violations):
    report = summary_rule_report(PUBLISHED, [ON_TIME, ON_TIME, ON_TIME, client])

    assert {name: count for name, count in report["violations"].items() if count} == violations


def test_a_status_change_sent_twice_is_a_repeat_not_a_violation():
    report = summary_rule_report(PUBLISHED, [ON_TIME, ON_TIME])

    assert sum(report["violations"].values()) == 0
    assert report["repeats"] == 2
