"""The race office's "Start simulation": run a race's market now, whether or not anyone watches.
Offered on the race list through races.admin's seam (wired in live.apps)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import admin, messages

from live.market.simulation import SIMULATED_STATUSES
from live.market.supervisor import simulation_supervisor
from races.admin import RaceAdmin


async def _pin(race_ids: list[int]) -> None:
    supervisor = simulation_supervisor()
    for race_id in race_ids:
        supervisor.race_pin(race_id)


@admin.action(description="Start simulation: run the market to its result now")
def start_simulation(modeladmin: RaceAdmin, request, queryset) -> None:
    if not settings.SIMULATION_ENABLED:
        modeladmin.message_user(request, "Simulation is turned off (SIMULATION_ENABLED).", messages.ERROR)
        return
    # The simulation must run on the server's event loop, not in this request's thread. Served
    # over ASGI (the request has a scope), the view runs in a worker thread of the server, and
    # async_to_sync runs the coroutine on the server's loop; elsewhere there is no such loop.
    if getattr(request, "scope", None) is None:
        modeladmin.message_user(request, "Simulations start only under the ASGI server (make run).", messages.ERROR)
        return
    startable = list(queryset.filter(status__in=SIMULATED_STATUSES, fed=False).values_list("pk", flat=True))
    skipped = queryset.count() - len(startable)
    async_to_sync(_pin)(startable)
    if startable:
        modeladmin.message_user(request, f"Started the market of {len(startable)} race(s).", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(
            request, f"Skipped {skipped} finished or feed-driven race(s): reset them first.", messages.WARNING
        )
