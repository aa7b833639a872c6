// What the top of a race's admin page shows and follows, decided from the protocol's messages
// (the board's state.js keeps the race's card and odds). Pure: race-live.js draws it.

import { currentOdds, favouriteHorseId, raceStatus } from "../live/state.js";

// The race's stream is followed only while its market is up (races.lifecycle.TAKES_ODDS less
// "scheduled"): odds move then and only then. A follower counts as a viewer, and a viewer starts
// a simulated market: the office's page must not open a race's market by being looked at. The
// status and the viewers come in the meeting's summaries all along.
export function followsRace(status) {
  return status === "open";
}

// The runners in runner order, as the odds board shows them: a scratched runner has no price (a
// late scratching still has one in the odds published before it), an abandoned race none at all.
export function oddsRows(state) {
  const abandoned = raceStatus(state) === "abandoned";
  const favourite = favouriteHorseId(state);
  return [...state.starters]
    .sort((a, b) => (a.runner_number ?? 999) - (b.runner_number ?? 999))
    .map((starter) => {
      const scratched = starter.scratched === true;
      return {
        horseId: starter.horse_id,
        number: starter.runner_number,
        name: starter.horse_name ?? "",
        scratched,
        odds: scratched || abandoned ? null : currentOdds(state, starter.horse_id),
        favourite: !scratched && starter.horse_id === favourite,
      };
    });
}

// A race_status as the page learns it from a summary: the new status, the start time as it was.
export function statusMoved(state, status) {
  return { status, previous: raceStatus(state), race_datetime: state.race?.race_datetime ?? null, reason: null };
}
