"""`make run` on loopback is development; on any other address it is DEBUG off, and says so."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from racing.launch import LOOPBACK_HOSTS, is_loopback, launch_plan, open_lines, store_new_key
from racing.settings import secret_key_problem
from tests.servers import REPO_DIR

STORED_KEY = "kept-in-the-key-file-0123456789-abcdefghijklmnopqrstuvwxyz"


def plan_for(host: str, *, serving: bool = True, stored_key: str | None = None, **environ: str):
    return launch_plan(host=host, environ=environ, stored_key=stored_key, serving=serving)


def clean_environment(**extra: str) -> dict[str, str]:
    """This run's environment without the settings the launcher decides on."""
    decided = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # and `make test`'s
    return {**{k: v for k, v in os.environ.items() if k not in decided}, **extra}


# --- Which addresses are loopback ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_loopback_addresses_and_localhost_are_loopback(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "fe80::1", "128.0.0.1", "raceday.local"])
def test_wildcards_lan_addresses_and_other_names_are_not(host):
    assert not is_loopback(host)


# --- What is decided ----------------------------------------------------------------------------


def test_on_loopback_debug_is_on_and_nothing_else_is_needed():
    plan = plan_for("127.0.0.1")

    assert plan.environment == {"DEBUG": "1"}
    assert plan.notes == [] and not plan.collect_static and not plan.new_key_needed


def test_on_loopback_debug_0_is_honoured_with_what_debug_off_needs():
    plan = plan_for("127.0.0.1", DEBUG="0")

    assert not plan.debug
    assert plan.new_key_needed and plan.collect_static
    assert "ALLOWED_HOSTS" not in plan.environment  # the default names loopback already


@pytest.mark.parametrize("asked", [None, "1", "0"])
def test_beyond_loopback_debug_is_off_whatever_was_asked_and_the_first_line_says_so(asked):
    plan = plan_for("0.0.0.0", **({"DEBUG": asked} if asked else {}))

    assert plan.environment["DEBUG"] == "0"
    assert plan.notes[0].startswith("DEBUG is off")
    assert "reachable from the network" in plan.notes[0]
    assert ("DEBUG=1 ignored" in plan.notes[0]) == (asked == "1")


def test_beyond_loopback_without_a_key_one_is_generated_and_kept():
    plan = plan_for("0.0.0.0")

    assert plan.new_key_needed
    assert any("generated one and kept it in .secret_key" in note for note in plan.notes)


def test_a_kept_key_is_used_and_a_key_in_the_environment_wins():
    assert plan_for("0.0.0.0", stored_key=STORED_KEY).environment["SECRET_KEY"] == STORED_KEY
    plan = plan_for("0.0.0.0", stored_key=STORED_KEY, SECRET_KEY="the operator's own")

    assert "SECRET_KEY" not in plan.environment and not plan.new_key_needed


def test_serving_beyond_loopback_collects_static_files_and_a_command_does_not():
    assert plan_for("0.0.0.0").collect_static
    assert not plan_for("0.0.0.0", serving=False).collect_static


def test_on_every_address_it_says_how_to_name_the_hosts_visitors_use():
    plan = plan_for("0.0.0.0")

    assert "ALLOWED_HOSTS" not in plan.environment
    (note,) = [note for note in plan.notes if note.startswith("ALLOWED_HOSTS")]
    assert "400 Bad Request" in note
    assert "ALLOWED_HOSTS=localhost,127.0.0.1,192.168.1.20,raceday.local HOST=0.0.0.0 make run" in note


@pytest.mark.parametrize("host, allowed", [("192.168.1.20", "192.168.1.20"), ("fd00::20", "[fd00::20]")])
def test_on_one_address_that_address_is_allowed_too(host, allowed):
    plan = plan_for(host)

    assert plan.environment["ALLOWED_HOSTS"].split(",") == [*LOOPBACK_HOSTS, allowed]


def test_allowed_hosts_from_the_environment_are_left_alone():
    plan = plan_for("0.0.0.0", ALLOWED_HOSTS="raceday.local")

    assert "ALLOWED_HOSTS" not in plan.environment
    assert not [note for note in plan.notes if note.startswith("ALLOWED_HOSTS")]


# --- What it prints and keeps -------------------------------------------------------------------


def test_the_lines_to_open_point_where_the_server_listens():
    lines = open_lines(host="127.0.0.1", port=8000, python=".venv/bin/python")

    assert "  Race-day server on http://127.0.0.1:8000/" in lines
    assert "    admin:      http://127.0.0.1:8000/admin/   (create a login: make admin)" in lines
    assert "    try it:     .venv/bin/python -m websockets ws://127.0.0.1:8000/ws/races/1" in lines
    assert "    race day:   http://[::1]:9000/" in open_lines(host="::1", port=9000, python="python")


def test_on_every_address_the_lines_point_here_and_say_how_to_come_from_the_lan():
    lines = open_lines(host="0.0.0.0", port=8000, python="python")

    assert "    race day:   http://127.0.0.1:8000/" in lines
    assert not [line for line in lines if "0.0.0.0" in line]
    assert "    from the LAN: http://<this machine's address>:8000/   (hostname -I)" in lines


def test_a_generated_key_is_accepted_by_the_settings_and_readable_by_its_owner_only(tmp_path):
    key = store_new_key(tmp_path / ".secret_key")

    assert secret_key_problem(key) is None
    assert (tmp_path / ".secret_key").read_text().strip() == key
    assert stat.S_IMODE((tmp_path / ".secret_key").stat().st_mode) == 0o600


def test_the_key_file_is_git_ignored():
    assert ".secret_key" in (REPO_DIR / ".gitignore").read_text().splitlines()


# --- The launcher and the Makefile, run -----------------------------------------------------------


def launch(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "racing.launch", *args],
        cwd=REPO_DIR, env=clean_environment(**environment), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_dry_run_on_the_lan_says_what_it_would_do_and_does_nothing(tmp_path):
    key_file = tmp_path / ".secret_key"

    done = launch("--bind", "0.0.0.0", "--port", "8123", "--key-file", str(key_file), "--dry-run", "serve")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("  DEBUG is off: 0.0.0.0 is reachable from the network")
    assert "would set: DEBUG=0 SECRET_KEY=<hidden>" in done.stdout
    assert "manage.py collectstatic --noinput" in done.stdout
    assert "-m racing.server --bind 0.0.0.0 --port 8123" in done.stdout
    assert not key_file.exists()


def test_a_command_beyond_loopback_runs_with_debug_off_and_a_kept_key(tmp_path):
    key_file = tmp_path / ".secret_key"
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"

    done = launch("--bind", "0.0.0.0", "--key-file", str(key_file), "manage", "check", DATABASE_URL=database)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "generated one and kept it in .secret_key" in done.stdout
    assert "System check identified no issues" in done.stdout
    assert key_file.exists()
    again = launch("--bind", "0.0.0.0", "--key-file", str(key_file), "manage", "check", DATABASE_URL=database)
    assert again.returncode == 0 and "generated" not in again.stdout


def make_dry_run(*arguments: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *arguments],
        cwd=REPO_DIR, env=clean_environment(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_serves_through_the_launcher_with_the_host_it_was_given():
    commands = make_dry_run("run", "HOST=0.0.0.0", "PORT=9000")

    assert ".venv/bin/python -m racing.launch --bind 0.0.0.0 --port 9000 manage migrate --noinput" in commands
    assert ".venv/bin/python -m racing.launch --bind 0.0.0.0 --port 9000 serve" in commands
    assert "manage.py createsuperuser" not in commands


def test_make_admin_creates_a_login_with_the_same_settings_as_make_run():
    commands = make_dry_run("admin")

    assert ".venv/bin/python -m racing.launch --bind 127.0.0.1 --port 8000 manage createsuperuser" in commands


def test_the_makefile_leaves_debug_to_the_launcher():
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "--eval", 'show-debug: ; @echo "DEBUG=[$$DEBUG]"', "show-debug"],
        cwd=REPO_DIR, env=clean_environment(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.stdout.strip() == "DEBUG=[]"


def test_the_readme_says_make_admin_where_it_said_a_command_that_fails_as_printed():
    readme = (REPO_DIR / "README.md").read_text()

    assert "`make admin`" in readme
    assert "manage.py createsuperuser" not in readme


def test_the_server_loads_the_application_then_hides_it_from_the_garbage_collector():
    # In a process of its own: freezing is for a server's whole life.
    script = (
        "import gc\n"
        "from racing.server import freeze_what_is_loaded\n"
        "freeze_what_is_loaded()\n"
        "import sys\n"
        "print(gc.get_freeze_count(), 'racing.asgi' in sys.modules)\n"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "racing.settings", "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=60
    )

    frozen, loaded = done.stdout.split()
    assert loaded == "True" and int(frozen) > 50_000, done.stderr[-2000:]
