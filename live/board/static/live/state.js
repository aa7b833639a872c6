// The board's state, rebuilt from protocol messages only: initial_state, odds_update, race_status,
// starter_update, interim_result, result_update. Pure functions on plain data, no DOM, so a
// reconnect simply starts over.

// Statuses in which the start time still matters (races.lifecycle.TAKES_DELAYS).
const BEFORE_THE_START = new Set(["scheduled", "open"]);
// Statuses with placings in (races.lifecycle.HAS_PLACINGS).
const HAS_PLACINGS = new Set(["interim", "protest", "official"]);

// What the server rendered the page with (its board-config): the race's status, its placings
// (interim ones are not on the card) and what the card does not say (a delay, the reason for the
// status, the drivers horses were drawn with).
export function createState({ status = "scheduled", result = null, notes = {} } = {}) {
  return {
    race: null,
    starters: [],
    history: new Map(),
    lastOddsAt: null,
    status,
    result: result ? { at: null, official: result.official, results: result.results } : null,
    statusReason: notes.statusReason ?? null,
    // { to, reason }: the start time after the latest delay (the card's, once it arrives).
    delay: notes.delayed ? { to: null, reason: notes.delayReason ?? null } : null,
    // horse id -> the driver it was drawn with, for each runner now driven by someone else.
    drawnDrivers: new Map(Object.entries(notes.drawnDrivers ?? {}).map(([h, name]) => [Number(h), name])),
  };
}

export function applyInitialState(state, message) {
  takeCard(state, message);
  state.history = new Map(state.starters.map((s) => [s.horse_id, []]));
  state.lastOddsAt = null;
}

// The race card again after a reconnect that resumes: starters and placings may have changed,
// the odds history is kept (the updates missed meanwhile are replayed into it).
export function applyCard(state, message) {
  const history = state.history;
  takeCard(state, message);
  state.history = new Map(state.starters.map((s) => [s.horse_id, scratched(s) ? [] : history.get(s.horse_id) || []]));
}

function takeCard(state, message) {
  const before = new Map(state.starters.map((s) => [s.horse_id, s]));
  const race = message.data.race;
  const status = race.status ?? state.status;
  if (status !== state.status) state.statusReason = null;
  state.race = race;
  state.starters = message.data.starters;
  state.status = status;
  // A driver changed while the page was away shows as changed too.
  for (const starter of state.starters) {
    const earlier = before.get(starter.horse_id);
    if (earlier) noteDriver(state, starter.horse_id, earlier.driver_name, starter.driver_name);
  }
  const official = resultFromStarters(state.starters);
  if (official) state.result = official;
  // Interim placings are not on the card: those already shown stay until interim_result follows.
  else if (!(HAS_PLACINGS.has(status) && state.result && !state.result.official)) state.result = null;
  // A delay stands until they race; the card has the start time as it is now.
  if (!BEFORE_THE_START.has(status)) state.delay = null;
  else if (state.delay) state.delay = { ...state.delay, to: race.race_datetime };
}

// An official race's initial_state carries the placings: show them at once rather than blank the
// result until the result_update that follows. Scratched starters did not run: not in a result.
function resultFromStarters(starters) {
  const runners = starters.filter((s) => !scratched(s));
  if (!runners.some((s) => s.placing !== null || s.did_not_finish)) return null;
  const finished = (s) => s.placing !== null && !s.did_not_finish;
  const results = [
    ...runners.filter(finished).sort((a, b) => a.placing - b.placing),
    ...runners.filter((s) => !finished(s)),
  ].map((s) => ({ horse_id: s.horse_id, placing: finished(s) ? s.placing : null, finished: finished(s) }));
  return { at: null, official: true, results };
}

const scratched = (starter) => starter.scratched === true;

export function starterOf(state, horseId) {
  return state.starters.find((s) => s.horse_id === horseId);
}

// Merge one market (live, or from the API's history) into each runner's history, kept in time
// order without duplicates, so updates may arrive in any order after a reconnect. A scratched
// runner has no odds, even in a market published before it was scratched.
export function applyOdds(state, { timestamp, odds }) {
  const at = Date.parse(timestamp);
  if (Number.isNaN(at)) return false;
  let changed = false;
  for (const { horse_id: horseId, odds: price } of odds) {
    const points = state.history.get(horseId);
    if (!points) continue; // not a starter of this race
    if (scratched(starterOf(state, horseId))) continue;
    if (points.some((p) => p.at === at)) continue;
    points.push({ at, odds: price });
    points.sort((a, b) => a.at - b.at);
    changed = true;
  }
  if (changed && (state.lastOddsAt === null || at > state.lastOddsAt)) state.lastOddsAt = at;
  // The first odds open a scheduled race's market (the server says so too, in race_status).
  if (changed && state.status === "scheduled") state.status = "open";
  return changed;
}

// A move to another status, or (status equal to previous) a new start time: a delay.
export function applyRaceStatus(state, { status, previous, race_datetime: startsAt, reason }) {
  if (state.race) state.race = { ...state.race, race_datetime: startsAt, status };
  if (status === previous) {
    state.delay = { to: startsAt, reason: reason ?? null };
    return;
  }
  state.status = status;
  state.statusReason = reason ?? null;
  if (!BEFORE_THE_START.has(status)) state.delay = null;
  if (!HAS_PLACINGS.has(status)) state.result = null; // abandoned: no result
}

// A scratching, a reinstatement or a new driver: the starter as the card now shows it. Returns
// the starter as it was (undefined for one the page did not know).
export function applyStarter(state, { change, starter }) {
  const index = state.starters.findIndex((s) => s.horse_id === starter.horse_id);
  const before = index >= 0 ? state.starters[index] : undefined;
  if (index >= 0) state.starters = state.starters.map((s, i) => (i === index ? starter : s));
  else state.starters = [...state.starters, starter];
  if (!state.history.has(starter.horse_id) || change === "scratched") state.history.set(starter.horse_id, []);
  if (change === "driver_changed" && before) noteDriver(state, starter.horse_id, before.driver_name, starter.driver_name);
  return before;
}

function noteDriver(state, horseId, before, after) {
  if (before === after) return;
  if (!state.drawnDrivers.has(horseId)) state.drawnDrivers.set(horseId, before);
  if (state.drawnDrivers.get(horseId) === after) state.drawnDrivers.delete(horseId); // back to the drawn driver
}

export function driverChanged(state, horseId) {
  return state.drawnDrivers.has(horseId);
}

export function drawnDriver(state, horseId) {
  return state.drawnDrivers.get(horseId);
}

// The placings as the judges call them, not yet official.
export function applyInterimResult(state, { results, timestamp }) {
  state.result = { at: Date.parse(timestamp), official: false, results };
  if (!HAS_PLACINGS.has(state.status) || state.status === "official") state.status = "interim";
}

export function applyResult(state, { results, timestamp }) {
  state.result = { at: Date.parse(timestamp), official: true, results };
  state.status = "official";
}

export function raceStatus(state) {
  return state.status;
}

// The start time still to come matters; once they are racing (or the race is over) it does not.
export function countsDown(state) {
  return BEFORE_THE_START.has(state.status);
}

// The line under the race's status that says what a fan must know now, or null (the race page's
// view says the same on the server).
export function raceNote(state) {
  const why = (reason) => (reason ? ` – ${reason.replace(/\.$/, "")}` : "");
  if (state.status === "abandoned") return `Abandoned${why(state.statusReason)}. There is no result.`;
  if (state.status === "protest") return `Protest${why(state.statusReason)}. The placings may change.`;
  if (state.delay && BEFORE_THE_START.has(state.status)) {
    const to = localTime(state.delay.to ?? state.race?.race_datetime);
    return to ? `Start delayed to ${to}${why(state.delay.reason)}.` : null;
  }
  return null;
}

// "18:15" from a start time sent in the venue's local time with its offset ("...T18:15:00+13:00"):
// the venue's clock, whatever the browser's time zone.
export function localTime(isoDateTime) {
  const match = /T(\d{2}:\d{2})/.exec(isoDateTime ?? "");
  return match ? match[1] : null;
}

export function currentOdds(state, horseId) {
  const points = state.history.get(horseId) || [];
  return points.length ? points[points.length - 1].odds : null;
}

export function previousOdds(state, horseId) {
  const points = state.history.get(horseId) || [];
  return points.length > 1 ? points[points.length - 2].odds : null;
}

// "shortening" (backed: the price came in), "drifting" (went out) or "steady".
export function movement(state, horseId) {
  const now = currentOdds(state, horseId);
  const before = previousOdds(state, horseId);
  if (now === null || before === null || now === before) return "steady";
  return now < before ? "shortening" : "drifting";
}

export function favouriteHorseId(state) {
  if (state.status === "abandoned") return null;
  let best = null;
  for (const starter of state.starters) {
    const price = currentOdds(state, starter.horse_id);
    if (price !== null && (best === null || price < best.price)) best = { id: starter.horse_id, price };
  }
  return best ? best.id : null;
}

export function placingOf(state, horseId) {
  if (!state.result) return undefined;
  return state.result.results.find((r) => r.horse_id === horseId);
}

// Whether finishers share this placing: a dead heat (1, 1, 3).
export function isDeadHeat(state, placing) {
  if (!state.result || placing === null || placing === undefined) return false;
  return state.result.results.filter((r) => r.finished && r.placing === placing).length > 1;
}

export function sortedStarters(state, by) {
  const starters = [...state.starters];
  const number = (s) => s.runner_number ?? 999;
  if (by === "odds") {
    const price = (s) => (scratched(s) ? Infinity : (currentOdds(state, s.horse_id) ?? Number.MAX_VALUE));
    starters.sort((a, b) => price(a) - price(b) || number(a) - number(b));
  } else {
    starters.sort((a, b) => number(a) - number(b));
  }
  return starters;
}
