"""
Serve the project with Daphne, configured as the live protocol needs.

``python -m racing.server [--bind HOST] [--port PORT] [daphne options...]`` is what ``make run``,
the end-to-end tests and the deployment examples start, so every Daphne this project runs has
the same frame-size limit and keepalive pings.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

# Keepalive pings find connections whose peer vanished without a close (a phone losing signal):
# a ping every 20 s, and no pong within 30 s drops the connection. The environment may shorten
# them (the end-to-end test of dead-connection reaping does).
PING_INTERVAL_S = int(os.environ.get("WEBSOCKET_PING_INTERVAL_S", "20"))  # whole seconds: Daphne's
PING_TIMEOUT_S = int(os.environ.get("WEBSOCKET_PING_TIMEOUT_S", "30"))
# How long a WebSocket handshake may take before Daphne drops it (its default is 5 s). In a
# connection storm (every phone reconnecting after a restart) handshakes queue behind each other;
# dropping the slow ones only makes them come back and queue again.
HANDSHAKE_TIMEOUT_S = 30
# Pending TCP connections the kernel may queue for us: Twisted's default of 50 turns a
# connection storm (every phone reconnecting after a restart) into SYN retries of a second each.
LISTEN_BACKLOG = 2048


def daphne_argv(*, host: str, port: int, extra: list[str]) -> list[str]:
    """Return Daphne's command-line arguments for this project."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "racing.settings")
    from django.conf import settings

    interface = host.replace(":", r"\:")  # an IPv6 address needs its colons escaped here
    return [
        "--endpoint", f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}",
        # Autobahn closes a larger frame with 1009 before our code ever buffers it.
        "--websocket-max-message-size", str(settings.WEBSOCKET_MAX_MESSAGE_BYTES),
        "--ping-interval", str(PING_INTERVAL_S),
        "--ping-timeout", str(PING_TIMEOUT_S),
        "--websocket_connect_timeout", str(HANDSHAKE_TIMEOUT_S),
        *extra,
        "racing.asgi:application",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, extra = parser.parse_known_args(argv)
    from daphne.cli import CommandLineInterface

    from racing.checks import exit_unless_ready_to_serve

    exit_unless_ready_to_serve()  # static files never collected: say so now, not 500 on every page
    freeze_what_is_loaded()
    CommandLineInterface().run(daphne_argv(host=args.bind, port=args.port, extra=extra))


def freeze_what_is_loaded() -> None:
    """Load Django and the application, then move every object alive so far out of the garbage
    collector's sight (``gc.freeze``): they live as long as the process anyway.

    Python's full collections scan every tracked object, and they come each time a quarter more
    objects have survived, which a connection storm makes happen again and again: measured with
    2,000 clients, collections took 1.2 s of the server's 5.1 s of CPU, 0.95 s of it in 8 full
    ones, most of whose work was the few hundred thousand objects of Django, the libraries and
    the application. Only what the connections and the race day create is scanned now."""
    import racing.asgi  # noqa: F401 - Daphne imports it next, from the module cache

    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
