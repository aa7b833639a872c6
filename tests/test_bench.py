"""The benchmark keeps working: a seconds-long smoke run (the full run is `make bench`)."""

import json
import subprocess
import sys

import pytest

from tests.servers import REPO_DIR

pytestmark = pytest.mark.e2e


def test_the_smoke_benchmark_delivers_everything_to_project_and_baseline(tmp_path):
    report_path = tmp_path / "bench.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(report_path)],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    [result] = report["results"]
    servers = {m["server"].split(" ")[0]: m for m in result["measurements"]}
    assert set(servers) == {"project", "baseline"}
    for measurement in servers.values():
        assert measurement["connected"] == measurement["clients"] == 50
        assert measurement["delivered"] == measurement["expected"] == 250
        assert measurement["p99_ms"] > 0
    assert report["queries_per_connect"] == 2
    assert "| smoke: memory, 50 clients | project" in done.stdout


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
