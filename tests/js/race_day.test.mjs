// The race day's races at a glance (live/board/static/live/summaries.js) and the board's words
// for times and counts (format.js): `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { secondsUntil, startsIn, timeSpan, watching } from "../../live/board/static/live/format.js";
import {
  applySummaries, createDay, isDelayed, nextToGo, summariesIn, winnersPieces,
} from "../../live/board/static/live/summaries.js";

const summary = (id, extra = {}) => ({
  id, meeting_id: "NZ_20261204_ADD", venue: "Addington", race_number: id, name: "", status: "scheduled",
  race_datetime: `2026-12-04T18:${String(10 + id).padStart(2, "0")}:00+13:00`, favourite: null, winners: null,
  viewers: 0, ...extra,
});
const meetingState = (races) => ({ type: "meeting_state", meeting_id: "NZ_20261204_ADD", races });
const changed = (race) => ({ type: "race_summary", race_id: race.id, race });
const ids = (races) => races.map((race) => race.id);

test("meeting_state and race_summary bring summaries; other messages none", () => {
  assert.deepEqual(ids(summariesIn(meetingState([summary(1), summary(2)]))), [1, 2]);
  assert.deepEqual(ids(summariesIn(changed(summary(3)))), [3]);
  assert.deepEqual(summariesIn({ type: "unsubscribed", meeting_id: "NZ_20261204_ADD" }), []);
});

test("next to go starts from the server's rows, then follows the summaries: soonest first", () => {
  const day = createDay({ nextToGo: [summary(2), summary(3)], rows: 3 });
  assert.deepEqual(ids(nextToGo(day)), [2, 3]);
  applySummaries(day, meetingState([summary(1, { status: "official" }), summary(2), summary(3), summary(4), summary(5)]));
  assert.deepEqual(ids(nextToGo(day)), [2, 3, 4]); // as many rows as the server lists
  // Ties go by meeting, then race number, as /api/next-to-go/ orders them.
  const at = "2026-12-04T19:00:00+13:00";
  applySummaries(day, meetingState([
    summary(7, { race_datetime: at, meeting_id: "NZ_20261204_ZZZ", race_number: 1 }),
    summary(6, { race_datetime: at, race_number: 2 }),
  ]));
  assert.deepEqual(ids(nextToGo(day)).slice(0, 3), [2, 3, 4]);
  applySummaries(day, changed(summary(2, { status: "closed" })));
  applySummaries(day, changed(summary(3, { status: "abandoned" })));
  applySummaries(day, changed(summary(4, { status: "official", winners: [] })));
  assert.deepEqual(ids(nextToGo(day)), [5, 6, 7]);
});

test("a race leaves next to go when it closes, and an open one stays, even overdue", () => {
  const day = createDay({ nextToGo: [summary(1, { status: "open" }), summary(2)] });
  applySummaries(day, changed(summary(1, { status: "closed" })));
  assert.deepEqual(ids(nextToGo(day)), [2]);
  applySummaries(day, changed(summary(2, { status: "open", race_datetime: "2020-01-01T12:00:00+13:00" })));
  assert.deepEqual(ids(nextToGo(day)), [2]);
  applySummaries(day, changed(summary(2, { race_datetime: null })));
  assert.deepEqual(ids(nextToGo(day)), []); // no start time: not next to go
});

test("a start that moves is a delay until they race", () => {
  const day = createDay({ nextToGo: [], delayed: [9] });
  applySummaries(day, meetingState([summary(1), summary(2), summary(9)]));
  assert.equal(isDelayed(day, day.races.get(9)), true); // as the server rendered it
  assert.equal(isDelayed(day, day.races.get(1)), false);
  applySummaries(day, changed(summary(1, { race_datetime: "2026-12-04T18:40:00+13:00" })));
  assert.equal(isDelayed(day, day.races.get(1)), true);
  applySummaries(day, changed(summary(1, { race_datetime: "2026-12-04T18:40:00+13:00", status: "closed" })));
  assert.equal(isDelayed(day, day.races.get(1)), false);
  applySummaries(day, changed(summary(2, { viewers: 12 }))); // its viewers change: no delay
  assert.equal(isDelayed(day, day.races.get(2)), false);
});

test("winners read as the race day's template says them", () => {
  const winner = (name) => ({ runner_number: 1, horse_id: 1, horse_name: name });
  assert.deepEqual(winnersPieces(null), []);
  assert.deepEqual(winnersPieces([]), []);
  assert.deepEqual(winnersPieces([winner("Doctor Magic")]), [" won by ", { name: "Doctor Magic" }]);
  assert.deepEqual(winnersPieces([winner("A"), winner("B")]), [" dead heat: ", { name: "A" }, " and ", { name: "B" }]);
  assert.deepEqual(winnersPieces([winner("A"), winner("B"), winner("C")]), [
    " dead heat: ", { name: "A" }, ", ", { name: "B" }, " and ", { name: "C" },
  ]);
});

test("next to go counts down to the second in the last hour, then says Due", () => {
  assert.equal(startsIn(3 * 86400 + 7 * 3600 + 59), "3 d 7 h");
  assert.equal(startsIn(2 * 3600 + 5 * 60 + 9), "2 h 05 m");
  assert.equal(startsIn(12 * 60 + 5), "12 m 05 s");
  assert.equal(startsIn(59), "59 s");
  assert.equal(startsIn(1), "1 s");
  assert.equal(startsIn(0), "Due");
  assert.equal(startsIn(-75), "Due");
  const now = Date.parse("2026-12-04T05:00:00Z");
  assert.equal(secondsUntil("2026-12-04T18:01:30+13:00", now), 90);
  assert.equal(secondsUntil("2026-12-04T18:00:00+13:00", now + 500), -1); // floored, as seconds_to_start
});

test("the race page counts down to the second", () => {
  assert.equal(timeSpan(90 * 60 - 1), "1 h 29 m 59 s");
  assert.equal(timeSpan(65), "1 m 05 s");
  assert.equal(timeSpan(-65), "1 m 05 s");
  assert.equal(timeSpan(2 * 86400 + 3600), "2 d 1 h");
});

test("viewers read as a count; on the race's own page one of them is the reader", () => {
  assert.equal(watching(0), "");
  assert.equal(watching(1), "1 watching");
  assert.equal(watching(1234), "1,234 watching");
  assert.equal(watching(0, { includesYou: true }), "Just you watching"); // counted within the second
  assert.equal(watching(1, { includesYou: true }), "Just you watching");
  assert.equal(watching(2, { includesYou: true }), "2 watching");
  assert.equal(watching(1234567, { includesYou: true }), "1,234,567 watching");
});
