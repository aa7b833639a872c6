"""Counts of what this server process holds, read on its event loop (docs/reliability.md)."""

from __future__ import annotations

import asyncio

from live import fanout, supervisor
from live.limits import connections_per_address


def live_process_stats() -> dict[str, int]:
    """Return this process's open WebSocket connections, watched races, running simulations and
    asyncio tasks; call it on the server's event loop."""
    loop = asyncio.get_running_loop()
    race_fanout = fanout._fanouts.get(loop)
    simulation_supervisor = supervisor._supervisors.get(loop)
    return {
        "websocket_connections": sum(connections_per_address.counts.values()),
        "races_watched": len(race_fanout.subscribers) if race_fanout is not None else 0,
        "simulations_running": len(simulation_supervisor.simulations) if simulation_supervisor is not None else 0,
        "asyncio_tasks": len(asyncio.all_tasks(loop)),
    }
