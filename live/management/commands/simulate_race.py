"""Run one race's simulated market in the foreground, broadcasting to the race's clients."""

from __future__ import annotations

import asyncio
import random

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from live.messages import OddsUpdateMessage, ResultUpdateMessage
from live.simulation import SimulationOutcome, SimulationTiming
from live.supervisor import race_simulation_take_over
from races.models import Race
from races.services import race_reset


class Command(BaseCommand):
    help = (
        "Run a race's simulated market now: odds every 5-10 s for about 60 s, then the result, "
        "broadcast through the channel layer to every client of the race."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("race_id", type=int)
        parser.add_argument(
            "--speedup", type=float, default=None, help="divide every delay by this (default: SIMULATION_SPEEDUP)"
        )
        parser.add_argument("--seed", type=int, default=None, help="seed for a reproducible race")
        parser.add_argument(
            "--reset", action="store_true", help="clear a finished race's result and odds history first"
        )

    def handle(self, *args, race_id: int, speedup: float | None, seed: int | None, reset: bool, **options) -> None:
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            raise CommandError(
                "The channel layer is in-memory, so updates from this command cannot reach the "
                "server's clients. Set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0) for both "
                "the server and this command."
            )
        if speedup is not None and speedup <= 0:
            raise CommandError("--speedup must be above 0.")
        race = Race.objects.select_related("meeting").filter(pk=race_id).first()
        if race is None:
            raise CommandError(f"Race {race_id} does not exist.")
        if race.status == Race.Status.FINISHED:
            if not reset:
                raise CommandError(f"Race {race_id} ({race}) is finished; use --reset to run it again.")
            race_reset(race_id=race_id)
            self.stdout.write(f"Reset race {race_id}: result and odds history cleared.")

        self.runners = {
            starter.horse_id: f"#{starter.runner_number or '-'} {starter.horse.name}"
            for starter in race.starters.select_related("horse")
        }
        self.stdout.write(f"Simulating race {race_id}: {race}, {len(self.runners)} starters")
        outcome = asyncio.run(
            race_simulation_take_over(
                race_id=race_id,
                rng=random.Random(seed),
                timing=SimulationTiming.from_settings(speedup=speedup),
                on_update=self.print_update,
            )
        )
        if outcome is not SimulationOutcome.FINISHED:
            raise CommandError(f"Race {race_id} stopped before its result: {outcome.value}.")

    def print_update(self, message: OddsUpdateMessage | ResultUpdateMessage) -> None:
        at = timezone.localtime(message.timestamp).strftime("%H:%M:%S")
        if isinstance(message, OddsUpdateMessage):
            prices = "  ".join(
                f"{self.runners[item.horse_id].split(' ')[0]} {item.odds:.2f}" for item in message.odds
            )
            self.stdout.write(f"{at} odds_update    {prices}")
        else:
            order = ", ".join(
                f"{item.placing} {self.runners[item.horse_id]}" if item.finished
                else f"DNF {self.runners[item.horse_id]}"
                for item in message.results
            )  # fmt: skip
            self.stdout.write(self.style.SUCCESS(f"{at} result_update  {order}"))
