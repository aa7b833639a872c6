// The race's field and placings on the board (live/board/static/live/state.js): scratchings,
// reinstatements, driver changes and dead heats. `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyCard, applyInitialState, applyOdds, applyResult, applyStarter, createState, currentOdds, drawnDriver,
  driverChanged, favouriteHorseId, isDeadHeat, placingOf, sortedStarters,
} from "../../live/board/static/live/state.js";

const starter = (horseId, extra = {}) => ({
  horse_id: horseId, runner_number: horseId, driver_name: `Driver ${horseId}`, placing: null, did_not_finish: false,
  scratched: false, ...extra,
});
const initial = (starters, race = {}) => ({
  type: "initial_state", data: { race: { status: "open", race_datetime: "2026-12-04T19:30:00+13:00", ...race }, starters },
});
const market = (timestamp, prices) => ({
  timestamp, odds: Object.entries(prices).map(([horseId, odds]) => ({ horse_id: Number(horseId), odds })),
});

function openRace() {
  const state = createState({ status: "open" });
  applyInitialState(state, initial([starter(1), starter(2), starter(3)]));
  applyOdds(state, market("2026-12-04T06:00:00Z", { 1: 2.5, 2: 4.0, 3: 6.0 }));
  return state;
}

test("a scratched runner loses its odds and cannot be favourite", () => {
  const state = openRace();
  assert.equal(favouriteHorseId(state), 1);
  const before = applyStarter(state, { change: "scratched", starter: starter(1, { scratched: true }) });
  assert.equal(before.scratched, false);
  assert.equal(state.starters[0].scratched, true);
  assert.equal(currentOdds(state, 1), null);
  assert.equal(favouriteHorseId(state), 2);
  // Later markets leave it out; the odds history (fetched after a reconnect) cannot bring it back.
  applyOdds(state, market("2026-12-04T05:59:00Z", { 1: 2.4, 2: 4.2, 3: 6.0 }));
  assert.equal(currentOdds(state, 1), null);
  assert.deepEqual(sortedStarters(state, "odds").map((s) => s.horse_id), [2, 3, 1]); // scratched last
});

test("a reinstated runner is back in the field, its market to come", () => {
  const state = createState({ status: "scheduled" });
  applyInitialState(state, initial([starter(1, { scratched: true }), starter(2)], { status: "scheduled" }));
  applyStarter(state, { change: "reinstated", starter: starter(1) });
  assert.equal(state.starters[0].scratched, false);
  applyOdds(state, market("2026-12-04T06:00:00Z", { 1: 3.0, 2: 2.0 }));
  assert.equal(currentOdds(state, 1), 3.0);
});

test("a new driver is marked as changed, with the driver drawn", () => {
  const state = openRace();
  assert.equal(driverChanged(state, 2), false);
  applyStarter(state, { change: "driver_changed", starter: starter(2, { driver_name: "Blair Orange" }) });
  assert.equal(state.starters[1].driver_name, "Blair Orange");
  assert.equal(driverChanged(state, 2), true);
  assert.equal(drawnDriver(state, 2), "Driver 2");
  assert.equal(currentOdds(state, 2), 4.0); // the market is untouched
  // Changed again: still drawn with the first; back to the first: no longer changed.
  applyStarter(state, { change: "driver_changed", starter: starter(2, { driver_name: "Dexter Dunn" }) });
  assert.equal(drawnDriver(state, 2), "Driver 2");
  applyStarter(state, { change: "driver_changed", starter: starter(2) });
  assert.equal(driverChanged(state, 2), false);
});

test("a driver change the server rendered, or one made while the page was away, is marked", () => {
  const state = createState({ status: "open", notes: { drawnDrivers: { 3: "Driver 3" } } });
  applyInitialState(state, initial([starter(1), starter(2), starter(3, { driver_name: "Blair Orange" })]));
  assert.equal(driverChanged(state, 3), true);
  applyCard(state, initial([starter(1, { driver_name: "Dexter Dunn" }), starter(2), starter(3, { driver_name: "Blair Orange" })]));
  assert.equal(drawnDriver(state, 1), "Driver 1");
  assert.equal(drawnDriver(state, 3), "Driver 3");
});

test("a dead heat shares a placing and is marked on both", () => {
  const state = openRace();
  const results = [
    { horse_id: 2, placing: 1, finished: true },
    { horse_id: 3, placing: 1, finished: true },
  ];
  applyStarter(state, { change: "scratched", starter: starter(1, { scratched: true }) });
  applyResult(state, { timestamp: "2026-12-04T06:10:00Z", results });
  assert.equal(isDeadHeat(state, 1), true);
  assert.equal(placingOf(state, 3).placing, 1);
  assert.equal(placingOf(state, 1), undefined); // scratched: not in the result
});

test("an official card leaves scratched starters out of its result", () => {
  const state = createState();
  applyInitialState(state, initial([
    starter(1, { scratched: true }), starter(2, { placing: 1 }), starter(3, { placing: 1 }), starter(4, { placing: 3 }),
  ], { status: "official" }));
  assert.deepEqual(state.result.results.map((r) => [r.horse_id, r.placing]), [[2, 1], [3, 1], [4, 3]]);
  assert.equal(isDeadHeat(state, 1), true);
  assert.equal(isDeadHeat(state, 3), false);
});
