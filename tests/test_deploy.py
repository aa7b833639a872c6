"""Production settings pass Django's deployment checks; the deploy/ examples fit the code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import REPO_DIR

DEPLOY = REPO_DIR / "deploy"


def production_environment() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "racing.settings", **values}


def test_check_deploy_is_clean_with_the_production_values():
    environment = production_environment()
    environment["SECRET_KEY"] = "kQ9!vR2#xL7@pZ4$wN8%tB1^mC6&yH3*jD5(fG0)sA-eU_iO+lK=" * 2
    environment["DATABASE_URL"] = "sqlite:///" + str(Path("/tmp") / "racing-check-deploy.sqlite3")

    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_DIR, env=environment, capture_output=True, text=True,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_the_systemd_unit_starts_the_server_as_make_run_does_behind_the_proxy():
    unit = (DEPLOY / "systemd" / "racing@.service").read_text()

    assert "-m racing.server --bind 127.0.0.1 --port %i --proxy-headers" in unit
    assert "EnvironmentFile=/etc/racing/env" in unit


def test_nginx_proxies_websocket_upgrades_to_every_process():
    config = (DEPLOY / "nginx.conf").read_text()

    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "server 127.0.0.1:8001" in config and "server 127.0.0.1:8002" in config
    assert "X-Forwarded-For" in config
