"""Live one race's simulated day in the foreground, broadcasting to the race's clients."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from live.market.race_day import DEAD_HEAT_PLACINGS, Forced
from live.market.simulation import (
    SIMULATED_STATUSES,
    OddsStored,
    ResultStored,
    SimulationOutcome,
    SimulationTiming,
    StarterStored,
    StatusStored,
    Update,
)
from live.market.supervisor import race_simulation_take_over
from races.models import Race
from races.services import race_reset

ANY_PLACING = 0  # --dead-heat without a placing: the plan picks one


class Command(BaseCommand):
    help = (
        "Live a race's simulated day now: scratchings, the market opening with odds every 5-10 s "
        "for about 60 s, the close, interim placings, now and then a protest, then the official "
        "result, broadcast through the channel layer to every client of the race. --scratch, "
        "--dead-heat, --protest and --abandon make one happen, to watch it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("race_id", type=int)
        parser.add_argument(
            "--speedup", type=float, default=None, help="divide every delay by this (default: SIMULATION_SPEEDUP)"
        )
        parser.add_argument("--seed", type=int, default=None, help="seed for a reproducible race day")
        parser.add_argument(
            "--reset", action="store_true", help="clear a race that has run (result, odds, scratchings) first"
        )
        parser.add_argument(
            "--scratch",
            nargs="?",
            const="either",
            choices=["early", "late", "either"],
            help="scratch a starter: before the market opens, or late (the market renormalised without it); "
            "without one, the plan's pick",
        )
        parser.add_argument(
            "--dead-heat",
            nargs="?",
            const=ANY_PLACING,
            type=int,
            metavar="PLACING",
            help="two finishers share a placing: 1, 2 or 3 (without one, the plan's pick)",
        )
        parser.add_argument(
            "--protest",
            nargs="?",
            const="either",
            choices=["upheld", "dismissed", "either"],
            help="a protest after the interim placings, upheld (the two swap placings) or dismissed; without one, "
            "the plan's pick (a third are upheld)",
        )
        parser.add_argument(
            "--abandon", action="store_true", help="abandon the race while its market is open: no result"
        )

    def handle(
        self,
        *args,
        race_id: int,
        speedup: float | None,
        seed: int | None,
        reset: bool,
        scratch: str | None,
        dead_heat: int | None,
        protest: str | None,
        abandon: bool,
        **options,
    ) -> None:
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
        if dead_heat not in (None, ANY_PLACING, *DEAD_HEAT_PLACINGS):
            raise CommandError(f"--dead-heat takes a placing that pays: {', '.join(map(str, DEAD_HEAT_PLACINGS))}.")
        if race.status not in SIMULATED_STATUSES and not reset:
            raise CommandError(f"Race {race_id} ({race}) is {race.status}; use --reset to run it again.")
        if race.fed and not reset:
            raise CommandError(f"Race {race_id} ({race}) is fed by a live feed; use --reset to simulate it.")
        if reset:
            race_reset(race_id=race_id)
            self.stdout.write(f"Reset race {race_id}: result, scratchings and odds history cleared.")
        forced = Forced(
            scratching=scratch,
            dead_heat=dead_heat is not None,
            dead_heat_at=None if dead_heat == ANY_PLACING else dead_heat,
            protest=protest,
            abandon=abandon,
        )

        self.runners = {
            starter.horse_id: f"#{starter.runner_number or '-'} {starter.horse.name}"
            for starter in race.starters.select_related("horse")
        }
        self.stdout.write(f"Simulating race {race_id}: {race}, {len(self.runners)} starters")
        try:
            outcome = asyncio.run(
                race_simulation_take_over(
                    race_id=race_id,
                    timing=SimulationTiming.from_settings(speedup=speedup),
                    seed=seed,
                    forced=forced,
                    on_update=self.print_update,
                )
            )
        except ValueError as impossible:  # a field too small to scratch from, say
            raise CommandError(f"Race {race_id}: {impossible}.") from None
        if outcome is not SimulationOutcome.FINISHED:
            raise CommandError(f"Race {race_id} stopped before its result: {outcome.value}.")

    def print_update(self, update: Update) -> None:
        match update:
            case OddsStored(taken_at=at, odds=odds):
                prices = "  ".join(f"{self.runners[horse_id].split(' ')[0]} {price:.2f}" for horse_id, price in odds)
                self.line(at, "odds_update", prices)
            case StatusStored(at=at, status=status, reason=reason):
                self.line(at, "race_status", f"{status} ({reason})" if reason else status)
            case StarterStored(at=at, horse_id=horse_id, change="scratched", late=late):
                self.line(at, "starter_update", f"scratched {self.runners[horse_id]}" + (" (late)" if late else ""))
            case StarterStored(at=at, horse_id=horse_id, driver_name=driver):
                self.line(at, "starter_update", f"new driver for {self.runners[horse_id]}: {driver}")
            case ResultStored(declared_at=at, placings=placings, official=official):
                order = ", ".join(
                    f"{item.placing} {self.runners[item.horse_id]}" if item.finished
                    else f"DNF {self.runners[item.horse_id]}"
                    for item in placings
                )  # fmt: skip
                self.line(at, "result_update" if official else "interim_result", order, success=official)

    def line(self, at, kind: str, text: str, *, success: bool = False) -> None:
        line = f"{timezone.localtime(at).strftime('%H:%M:%S')} {kind:<14} {text}"
        self.stdout.write(self.style.SUCCESS(line) if success else line)
