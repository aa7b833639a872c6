"""Production settings pass Django's deployment checks; the deploy/ examples fit the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import REPO_DIR, free_port

DEPLOY = REPO_DIR / "deploy"
HASHED_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
PLAIN_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"


def production_environment() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "racing.settings", **values}


def check_deploy(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_DIR, env=environment, capture_output=True, text=True,
    )  # fmt: skip


def test_check_deploy_refuses_env_example_as_shipped_and_says_how_to_make_a_key():
    done = check_deploy(production_environment())

    assert done.returncode != 0
    assert "SECRET_KEY is a placeholder" in done.stderr
    assert 'python -c "import secrets; print(secrets.token_urlsafe(50))"' in done.stderr


def production_environment_with_a_key(static_root: Path) -> dict[str, str]:
    """Return env.example's values with a real key, as an operator fills them in."""
    environment = production_environment()
    environment["SECRET_KEY"] = "kQ9!vR2#xL7@pZ4$wN8%tB1^mC6&yH3*jD5(fG0)sA-eU_iO+lK=" * 2
    environment["DATABASE_URL"] = "sqlite:///" + str(static_root.parent / "racing-check-deploy.sqlite3")
    environment["STATIC_ROOT"] = str(static_root)
    return environment


def test_check_deploy_is_clean_with_the_production_values(tmp_path):
    environment = production_environment_with_a_key(tmp_path / "static")
    # What deploy/systemd/racing-migrate.service does once per release.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=REPO_DIR, env=environment, check=True, timeout=120,
    )  # fmt: skip

    done = check_deploy(environment)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_reports_static_files_never_collected_and_what_to_run(tmp_path):
    done = check_deploy(production_environment_with_a_key(tmp_path / "static"))

    assert done.returncode != 0
    assert "(racing.E001) Static files were never collected" in done.stderr
    assert "manage.py collectstatic --noinput" in done.stderr


def test_the_server_refuses_to_start_before_collectstatic_and_says_what_to_run(tmp_path):
    environment = production_environment_with_a_key(tmp_path / "static")

    done = subprocess.run(
        [sys.executable, "-m", "racing.server", "--bind", "127.0.0.1", "--port", str(free_port())],
        cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 1
    assert "Not starting: Static files were never collected" in done.stderr
    assert "manage.py collectstatic --noinput" in done.stderr


def test_the_static_check_needs_only_hashed_storage_with_debug_off(settings, tmp_path):
    from racing.checks import static_manifest_check

    settings.STATIC_ROOT = tmp_path
    settings.DEBUG = False
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": HASHED_STORAGE}}
    assert [error.id for error in static_manifest_check()] == ["racing.E001"]

    (tmp_path / "staticfiles.json").write_text('{"paths": {}, "version": "1.1", "hash": ""}')
    assert static_manifest_check() == []

    (tmp_path / "staticfiles.json").unlink()
    settings.DEBUG = True  # plain names, files from the apps' folders: nothing to collect
    assert static_manifest_check() == []

    settings.DEBUG = False
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STORAGE}}
    assert static_manifest_check() == []


def test_the_systemd_unit_starts_the_server_as_make_run_does_behind_the_proxy():
    unit = (DEPLOY / "systemd" / "racing@.service").read_text()

    assert "-m racing.server --bind 127.0.0.1 --port %i --proxy-headers" in unit
    assert "EnvironmentFile=/etc/racing/env" in unit


def test_nginx_proxies_websocket_upgrades_to_every_process():
    config = (DEPLOY / "nginx.conf").read_text()

    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "server 127.0.0.1:8001" in config and "server 127.0.0.1:8002" in config
    assert "X-Forwarded-For" in config


def test_nginx_sets_the_client_address_rather_than_appending_to_what_the_client_sent():
    """Daphne reads the first address of X-Forwarded-For: appended to, it is the client's choice."""
    config = (DEPLOY / "nginx.conf").read_text()

    assert "$proxy_add_x_forwarded_for" not in config
    assert config.count("proxy_set_header X-Forwarded-For $remote_addr;") == 2
