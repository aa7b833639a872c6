// The board's state, rebuilt from protocol messages only: initial_state, odds_update,
// result_update. Pure functions on plain data, no DOM, so a reconnect simply starts over.

export function createState() {
  return { race: null, starters: [], history: new Map(), lastOddsAt: null, result: null };
}

export function applyInitialState(state, message) {
  state.race = message.data.race;
  state.starters = message.data.starters;
  state.history = new Map(state.starters.map((s) => [s.horse_id, []]));
  state.lastOddsAt = null;
  state.result = resultFromStarters(state.starters);
}

// The race card again after a reconnect that resumes: starters and placings may have changed,
// the odds history is kept (the updates missed meanwhile are replayed into it).
export function applyCard(state, message) {
  const history = state.history;
  state.race = message.data.race;
  state.starters = message.data.starters;
  state.history = new Map(state.starters.map((s) => [s.horse_id, history.get(s.horse_id) || []]));
  state.result = resultFromStarters(state.starters);
}

// A finished race's initial_state already carries the placings: show them at once rather than
// blank the result until the result_update that follows.
function resultFromStarters(starters) {
  if (!starters.some((s) => s.placing !== null || s.did_not_finish)) return null;
  const finished = (s) => s.placing !== null && !s.did_not_finish;
  const results = [
    ...starters.filter(finished).sort((a, b) => a.placing - b.placing),
    ...starters.filter((s) => !finished(s)),
  ].map((s) => ({ horse_id: s.horse_id, placing: finished(s) ? s.placing : null, finished: finished(s) }));
  return { at: null, results };
}

// Merge one market (live, or from the API's history) into each runner's history, kept in time
// order without duplicates, so updates may arrive in any order after a reconnect.
export function applyOdds(state, { timestamp, odds }) {
  const at = Date.parse(timestamp);
  if (Number.isNaN(at)) return false;
  let changed = false;
  for (const { horse_id: horseId, odds: price } of odds) {
    const points = state.history.get(horseId);
    if (!points) continue; // not a starter of this race
    if (points.some((p) => p.at === at)) continue;
    points.push({ at, odds: price });
    points.sort((a, b) => a.at - b.at);
    changed = true;
  }
  if (changed && (state.lastOddsAt === null || at > state.lastOddsAt)) state.lastOddsAt = at;
  return changed;
}

export function applyResult(state, { results, timestamp }) {
  state.result = { at: Date.parse(timestamp), results };
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

export function sortedStarters(state, by) {
  const starters = [...state.starters];
  if (by === "odds") {
    const price = (s) => currentOdds(state, s.horse_id) ?? Infinity;
    starters.sort((a, b) => price(a) - price(b) || (a.runner_number ?? 999) - (b.runner_number ?? 999));
  } else {
    starters.sort((a, b) => (a.runner_number ?? 999) - (b.runner_number ?? 999));
  }
  return starters;
}
