"""``/healthz``: the counts of what this server process holds, for a load balancer's health check
and for the soak run's leak checks (docs/reliability.md). Counts only: nothing about any client."""

from __future__ import annotations

import asyncio

from django.http import HttpRequest, JsonResponse

from live.market.supervisor import simulations_running
from live.protocol import daphne
from live.protocol.fanout import races_watched
from live.protocol.limits import connections_per_address


def live_process_stats() -> dict[str, int]:
    """Return this process's open WebSocket connections, watched races, running simulations,
    unfinished HTTP requests and asyncio tasks; call it on the server's event loop."""
    return {
        "websocket_connections": connections_per_address.total,
        "races_watched": races_watched(),
        "simulations_running": simulations_running(),
        "asyncio_tasks": len(asyncio.all_tasks()),
        # Connections whose first HTTP request (or WebSocket handshake) is not in yet.
        "http_requests_pending": daphne.http_requests_pending(),
    }


async def health(request: HttpRequest) -> JsonResponse:
    """Return this process's live counts, and what of the Daphne adapter is off, if anything."""
    return JsonResponse({"status": "ok", **live_process_stats(), **daphne.adapter_health()})
