"""
What ``make run`` and ``make admin`` start, with settings that fit the address served on.

``python -m racing.launch --bind HOST --port PORT [--dry-run] serve [daphne options...]`` serves;
``... manage COMMAND [options]`` runs a management command with the same settings.

On loopback (127.0.0.0/8, ::1, localhost) only this machine can connect, and DEBUG is on as for
development (``DEBUG=0`` turns it off). On any other address, the race office trying the server
on its LAN for instance, everyone on the network can connect, and a debug page would show them
tracebacks, settings and SQL: DEBUG is off whatever the environment says, and the server then
needs what production needs. A SECRET_KEY is generated once and kept in ``.secret_key``
(git-ignored), static files are collected, and ALLOWED_HOSTS names the address served (or the
launcher says how to set it). Each such decision is printed in one line.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
KEY_FILE = REPO_DIR / ".secret_key"
# The settings' default ALLOWED_HOSTS: loopback names only.
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
WILDCARD_ADDRESSES = {"0.0.0.0", "::"}  # noqa: S104 - recognised here, not bound


def is_loopback(host: str) -> bool:
    """Return whether only this machine can reach a server bound to ``host``."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a host name other than localhost may resolve to any address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def url_host(host: str) -> str:
    """Return ``host`` as it goes in a URL (an IPv6 address in brackets)."""
    name = host.strip("[]")
    return f"[{name}]" if ":" in name else name


def env_bool(value: str | None) -> bool | None:
    """Return a DEBUG-style variable as the settings read it, or None when it is unset."""
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Plan:
    """What to set and do before serving or running a command, and what to tell the operator."""

    environment: dict[str, str] = field(default_factory=dict)  # set on top of os.environ
    notes: list[str] = field(default_factory=list)  # one line each
    new_key_needed: bool = False  # generate a SECRET_KEY and keep it in the key file
    collect_static: bool = False

    @property
    def debug(self) -> bool:
        return self.environment["DEBUG"] == "1"


def launch_plan(*, host: str, environ: Mapping[str, str], stored_key: str | None, serving: bool) -> Plan:
    """Return the settings and steps for serving (or running a command) bound to ``host``.

    ``stored_key`` is the content of the key file, None if there is none.
    """
    plan = Plan()
    asked = env_bool(environ.get("DEBUG"))
    if is_loopback(host):
        debug = True if asked is None else asked
    else:
        debug = False
        ignored = " (DEBUG=1 ignored)" if asked else ""
        plan.notes.append(
            f"DEBUG is off{ignored}: {host} is reachable from the network, where a debug page would "
            "show tracebacks and settings to anyone."
        )
    plan.environment["DEBUG"] = "1" if debug else "0"
    if debug:
        return plan

    if not environ.get("SECRET_KEY"):
        if stored_key:
            plan.environment["SECRET_KEY"] = stored_key
            plan.notes.append(f"SECRET_KEY is the one kept in {KEY_FILE.name} (set SECRET_KEY to use another).")
        else:
            plan.new_key_needed = True
            plan.notes.append(
                f"SECRET_KEY was not set: generated one and kept it in {KEY_FILE.name} (git-ignored) for next time."
            )
    if serving:
        plan.collect_static = True
        plan.notes.append("Static files: collecting them (manage.py collectstatic), as DEBUG off needs.")
    if serving and not is_loopback(host) and not environ.get("ALLOWED_HOSTS"):
        if host in WILDCARD_ADDRESSES:
            plan.notes.append(
                "ALLOWED_HOSTS names only localhost: a visitor using this machine's address or name gets "
                "400 Bad Request. Name them all (addresses: hostname -I), e.g. "
                f"ALLOWED_HOSTS=localhost,127.0.0.1,192.168.1.20,raceday.local HOST={host} make run"
            )
        else:
            plan.environment["ALLOWED_HOSTS"] = ",".join([*LOOPBACK_HOSTS, url_host(host)])
            plan.notes.append(
                f"ALLOWED_HOSTS is localhost and {url_host(host)}; if visitors use a name for this "
                "machine, set ALLOWED_HOSTS to all of them (comma-separated)."
            )
    return plan


def open_lines(*, host: str, port: int, python: str) -> list[str]:
    """Return the lines that tell what to open once the server is up."""
    wildcard = host in WILDCARD_ADDRESSES
    here = url_host("::1" if host == "::" else "127.0.0.1") if wildcard else url_host(host)
    origin = f"{here}:{port}"
    lines = [
        "",
        f"  Race-day server on every address of this machine, port {port}" if wildcard
        else f"  Race-day server on http://{origin}/",
        f"    race day:   http://{origin}/",
        f"    admin:      http://{origin}/admin/   (create a login: make admin)",
        f"    live race:  ws://{origin}/ws/races/1",
        f"    try it:     {python} -m websockets ws://{origin}/ws/races/1",
    ]  # fmt: skip
    if wildcard:
        lines.append(f"    from the LAN: http://<this machine's address>:{port}/   (hostname -I)")
    return [*lines, ""]


def read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def store_new_key(path: Path) -> str:
    """Generate a SECRET_KEY, write it to ``path`` readable by its owner only, and return it."""
    key = secrets.token_urlsafe(50)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--key-file", type=Path, default=KEY_FILE)
    parser.add_argument("--dry-run", action="store_true", help="print what would be done, do nothing")
    parser.add_argument("command", choices=["serve", "manage"])
    args, rest = parser.parse_known_args(argv)
    serving = args.command == "serve"

    plan = launch_plan(host=args.bind, environ=os.environ, stored_key=read_key(args.key_file), serving=serving)
    if plan.new_key_needed:
        plan.environment["SECRET_KEY"] = "<generated>" if args.dry_run else store_new_key(args.key_file)
    if serving or plan.new_key_needed:
        for note in plan.notes:
            print(f"  {note}")
    python = os.path.relpath(sys.executable)  # .venv/bin/python from `make`, as the README says
    python = sys.executable if python.startswith("..") else python
    if serving:
        command = [sys.executable, "-m", "racing.server", "--bind", args.bind, "--port", str(args.port), *rest]
    else:
        command = [sys.executable, str(REPO_DIR / "manage.py"), *rest]
    environment = {**os.environ, **plan.environment}
    collect = [sys.executable, str(REPO_DIR / "manage.py"), "collectstatic", "--noinput", "-v0"]

    if args.dry_run:
        print("  Dry run: nothing was written, collected or started.")
        shown = {name: "<hidden>" if name == "SECRET_KEY" else value for name, value in plan.environment.items()}
        print("  would set:", " ".join(f"{name}={value}" for name, value in sorted(shown.items())))
        if plan.collect_static:
            print("  would run:", " ".join(collect))
        print("  would run:", " ".join(command))
        return
    if plan.collect_static:
        subprocess.run(collect, cwd=REPO_DIR, env=environment, check=True)
    if serving:
        print("\n".join(open_lines(host=args.bind, port=args.port, python=python)), flush=True)
    # Replace this process: Ctrl-C and systemd's signals reach Daphne or the command directly.
    os.execve(sys.executable, command, environment)


if __name__ == "__main__":
    main()
