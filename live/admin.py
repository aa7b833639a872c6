"""The race office's admin, extended with what only the live server can do: start a market."""

from __future__ import annotations

import asyncio

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.contrib import admin, messages

from live.supervisor import simulation_supervisor
from races.admin import RaceAdmin
from races.models import Race

START_TIMEOUT_S = 5


async def _pin(race_ids: list[int]) -> None:
    supervisor = simulation_supervisor()
    for race_id in race_ids:
        supervisor.race_pin(race_id)


@admin.action(description="Start simulation: run the market to its result now")
def start_simulation(modeladmin: RaceAdmin, request, queryset) -> None:
    # The simulation must run on the server's event loop, not in this request's thread: the
    # admin view runs in a worker thread of the ASGI server, which knows its loop.
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if not settings.SIMULATION_ENABLED:
        modeladmin.message_user(request, "Simulation is turned off (SIMULATION_ENABLED).", messages.ERROR)
        return
    if loop is None or not loop.is_running():
        modeladmin.message_user(
            request, "Simulations start only under the ASGI server (make run).", messages.ERROR
        )
        return
    startable = list(queryset.exclude(status=Race.Status.FINISHED).filter(fed=False).values_list("pk", flat=True))
    skipped = queryset.count() - len(startable)
    asyncio.run_coroutine_threadsafe(_pin(startable), loop).result(timeout=START_TIMEOUT_S)
    if startable:
        modeladmin.message_user(request, f"Started the market of {len(startable)} race(s).", messages.SUCCESS)
    if skipped:
        modeladmin.message_user(
            request, f"Skipped {skipped} finished or feed-driven race(s): reset them first.", messages.WARNING
        )


RaceAdmin.actions = [*RaceAdmin.actions, start_simulation]
