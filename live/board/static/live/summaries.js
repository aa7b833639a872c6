// Races at a glance, as /ws/live's meeting_state and race_summary carry them (docs/protocol.md):
// what the race-day page knows of each race, the races next to go, and the words for a race's
// winners. Pure: race-day.js draws them.

// Statuses of a race still to be run (races.lifecycle.TO_GO): next to go lists them.
const TO_GO = new Set(["scheduled", "open"]);

// The summaries a message brings: every race of a meeting (or a day), or one race's.
export function summariesIn(message) {
  if (message.type === "meeting_state") return message.races ?? [];
  if (message.type === "race_summary" && message.race) return [message.race];
  return [];
}

// What the server rendered the page with (its day-config): the races next to go (null on a page
// without them), the races whose start was put back, and how many races next to go lists.
export function createDay({ nextToGo = null, delayed = [], rows = 10 } = {}) {
  const day = { races: new Map(), delayed: new Set(delayed), rows, listsNextToGo: nextToGo !== null };
  for (const race of nextToGo ?? []) day.races.set(race.id, race);
  return day;
}

// Take a meeting_state or a race_summary; return the summaries it brought, each now the day's.
export function applySummaries(day, message) {
  const races = summariesIn(message);
  for (const race of races) {
    const before = day.races.get(race.id);
    // A start that moves is a delay, as the server marks one (a status change that keeps the
    // status and changes the start time).
    if (before && before.race_datetime !== race.race_datetime) day.delayed.add(race.id);
    day.races.set(race.id, race);
  }
  return races;
}

// Whether the race shows as delayed: a delay matters until they race.
export function isDelayed(day, race) {
  return day.delayed.has(race.id) && TO_GO.has(race.status);
}

const byText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

// The next races to start among those the page knows, as /api/next-to-go/ lists them: not yet
// closed (an overdue one until it closes), with a start time, soonest first, then by meeting and
// race number.
export function nextToGo(day) {
  return [...day.races.values()]
    .filter((race) => TO_GO.has(race.status) && race.race_datetime)
    .sort(
      (a, b) =>
        Date.parse(a.race_datetime) - Date.parse(b.race_datetime) ||
        byText(a.meeting_id, b.meeting_id) ||
        a.race_number - b.race_number,
    )
    .slice(0, day.rows);
}

// An official race's winners in words, as the race day's template says them: text and names
// (each { name }) in order, [] for none. " won by X"; " dead heat: A and B"; " dead heat: A, B and C".
export function winnersPieces(winners) {
  if (!winners?.length) return [];
  if (winners.length === 1) return [" won by ", { name: winners[0].horse_name }];
  const pieces = [" dead heat: "];
  winners.forEach((winner, index) => {
    pieces.push({ name: winner.horse_name });
    if (index === winners.length - 2) pieces.push(" and ");
    else if (index < winners.length - 2) pieces.push(", ");
  });
  return pieces;
}
