// The race's status on the board (live/board/static/live/state.js): `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyCard, applyInitialState, applyInterimResult, applyOdds, applyRaceStatus, applyResult, countsDown,
  createState, raceNote, raceStatus,
} from "../../live/board/static/live/state.js";

const START = "2026-12-04T19:30:00+13:00";
const starter = (horseId, extra = {}) => ({
  horse_id: horseId, driver_name: `Driver ${horseId}`, placing: null, did_not_finish: false, scratched: false, ...extra,
});
const initial = (starters, race = {}) => ({
  type: "initial_state", data: { race: { status: "scheduled", race_datetime: START, ...race }, starters },
});
const odds = (timestamp) => ({ timestamp, odds: [{ horse_id: 1, odds: 219.24 }, { horse_id: 2, odds: 1.8 }] });
const moved = (status, previous, extra = {}) => ({
  type: "race_status", status, previous, race_datetime: START, reason: null, ...extra,
});
const placings = [{ horse_id: 2, placing: 1, finished: true }, { horse_id: 1, placing: 2, finished: true }];

test("the page's rendered status holds until the card arrives, which says the race's status", () => {
  const state = createState({ status: "open" });
  assert.equal(raceStatus(state), "open");
  applyInitialState(state, initial([starter(1), starter(2)], { status: "closed" }));
  assert.equal(raceStatus(state), "closed");
});

test("a race moves through its day with race_status", () => {
  const state = createState();
  applyInitialState(state, initial([starter(1), starter(2)]));
  assert.equal(countsDown(state), true);
  for (const [status, previous] of [["open", "scheduled"], ["closed", "open"]]) {
    applyRaceStatus(state, moved(status, previous));
    assert.equal(raceStatus(state), status);
  }
  assert.equal(countsDown(state), false); // they are racing: no countdown
  applyRaceStatus(state, moved("interim", "closed"));
  applyInterimResult(state, { timestamp: "2026-12-04T06:35:00Z", results: placings });
  assert.equal(raceStatus(state), "interim");
  assert.equal(state.result.official, false);
  applyRaceStatus(state, moved("official", "interim"));
  applyResult(state, { timestamp: "2026-12-04T06:36:00Z", results: placings });
  assert.equal(raceStatus(state), "official");
  assert.equal(state.result.official, true);
});

test("an upcoming race's market opens with its first odds", () => {
  const state = createState();
  applyInitialState(state, initial([starter(1), starter(2)]));
  assert.equal(raceStatus(state), "scheduled");
  applyOdds(state, odds("2026-12-05T02:00:00Z"));
  assert.equal(raceStatus(state), "open");
});

test("an official result makes the race official", () => {
  const state = createState({ status: "open" });
  applyInitialState(state, initial([starter(1), starter(2)], { status: "open" }));
  applyResult(state, { timestamp: "2026-12-05T02:01:00Z", results: [{ horse_id: 2, placing: 1, finished: true }] });
  assert.equal(raceStatus(state), "official");
});

test("an official race's card shows its result before any result_update", () => {
  const state = createState({ status: "scheduled" });
  applyInitialState(state, initial([starter(1, { placing: 2 }), starter(2, { placing: 1 })], { status: "official" }));
  assert.equal(raceStatus(state), "official");
  assert.deepEqual(state.result.results.map((r) => r.horse_id), [2, 1]);
  assert.equal(state.result.official, true);
});

test("a race rendered as official whose card is scheduled was reset: no result", () => {
  const state = createState({ status: "official", result: { official: true, results: placings } });
  assert.notEqual(state.result, null);
  applyInitialState(state, initial([starter(1), starter(2)]));
  assert.equal(raceStatus(state), "scheduled");
  assert.equal(state.result, null);
});

test("a resumed card keeps the market it has seen", () => {
  const state = createState();
  applyInitialState(state, initial([starter(1), starter(2)]));
  applyOdds(state, odds("2026-12-05T02:00:00Z"));
  applyCard(state, initial([starter(1), starter(2)], { status: "open" }));
  assert.equal(raceStatus(state), "open");
  assert.equal(state.history.get(2).length, 1);
});

test("a protest keeps the interim placings and says they may change", () => {
  const state = createState();
  applyInitialState(state, initial([starter(1), starter(2)], { status: "closed" }));
  applyRaceStatus(state, moved("interim", "closed"));
  applyInterimResult(state, { timestamp: "2026-12-04T06:35:00Z", results: placings });
  applyRaceStatus(state, moved("protest", "interim", { reason: "Interference at the 400 m." }));
  assert.equal(raceStatus(state), "protest");
  assert.equal(state.result.official, false);
  assert.equal(raceNote(state), "Protest – Interference at the 400 m. The placings may change.");
  // Upheld: new interim placings, then official.
  applyRaceStatus(state, moved("interim", "protest"));
  assert.equal(raceNote(state), null);
  const upheld = [{ horse_id: 1, placing: 1, finished: true }, { horse_id: 2, placing: 2, finished: true }];
  applyInterimResult(state, { timestamp: "2026-12-04T06:40:00Z", results: upheld });
  applyRaceStatus(state, moved("official", "interim"));
  applyResult(state, { timestamp: "2026-12-04T06:41:00Z", results: upheld });
  assert.equal(state.result.results[0].horse_id, 1);
});

test("an interim race's card keeps the placings the page has until interim_result repeats them", () => {
  const state = createState({ status: "interim", result: { official: false, results: placings } });
  applyInitialState(state, initial([starter(1), starter(2)], { status: "interim" })); // no placings on the card
  assert.deepEqual(state.result.results, placings);
  assert.equal(state.result.official, false);
});

test("an abandoned race has no result and its market stops", () => {
  const state = createState();
  applyInitialState(state, initial([starter(1), starter(2)], { status: "closed" }));
  applyRaceStatus(state, moved("interim", "closed"));
  applyInterimResult(state, { timestamp: "2026-12-04T06:35:00Z", results: placings });
  applyRaceStatus(state, moved("abandoned", "interim", { reason: "Track unsafe" }));
  assert.equal(raceStatus(state), "abandoned");
  assert.equal(state.result, null);
  assert.equal(countsDown(state), false);
  assert.equal(raceNote(state), "Abandoned – Track unsafe. There is no result.");
});

test("a delay moves the start time and is noted until they race", () => {
  const state = createState();
  applyInitialState(state, initial([starter(1), starter(2)], { status: "open" }));
  assert.equal(raceNote(state), null);
  applyRaceStatus(state, moved("open", "open", { race_datetime: "2026-12-04T19:45:00+13:00", reason: "Ambulance" }));
  assert.equal(raceStatus(state), "open"); // not a move: a delay
  assert.equal(state.race.race_datetime, "2026-12-04T19:45:00+13:00");
  assert.equal(raceNote(state), "Start delayed to 19:45 – Ambulance.");
  applyCard(state, initial([starter(1), starter(2)], { status: "open", race_datetime: "2026-12-04T19:45:00+13:00" }));
  assert.equal(raceNote(state), "Start delayed to 19:45 – Ambulance."); // a reconnect keeps it
  applyRaceStatus(state, moved("closed", "open", { race_datetime: "2026-12-04T19:45:00+13:00" }));
  assert.equal(raceNote(state), null);
  assert.equal(state.delay, null);
});

test("a delay the server rendered takes the card's start time", () => {
  const state = createState({ status: "scheduled", notes: { delayed: true, delayReason: null } });
  applyInitialState(state, initial([starter(1)], { race_datetime: "2026-12-04T20:00:00+13:00" }));
  assert.equal(raceNote(state), "Start delayed to 20:00.");
});
