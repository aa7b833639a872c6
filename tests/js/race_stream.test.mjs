// One race's stream on /ws/live (live/board/static/live/race-stream.js) and the socket's pace
// (pacing.js): `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FrameBudget, retryDelayMs } from "../../live/board/static/live/pacing.js";
import { RaceStream } from "../../live/board/static/live/race-stream.js";

const initial = (epoch) => ({ type: "initial_state", race_id: 7, epoch, data: {} });
const odds = (seq) => ({ type: "odds_update", race_id: 7, seq });
const types = ({ deliver }) => deliver.map(([message, options]) => [message.type, options.keepHistory ?? false]);

function streamAt(seq) {
  const stream = new RaceStream(7);
  stream.subscribe();
  stream.receive(initial("e1"));
  for (let s = 1; s <= seq; s += 1) stream.receive(odds(s));
  return stream;
}

test("a first subscribe only asks for the race; the card goes to the page at once", () => {
  const stream = new RaceStream(7);
  assert.deepEqual(stream.subscribe(), { type: "subscribe", race_id: 7 });
  assert.deepEqual(types(stream.receive(initial("e1"))), [["initial_state", false]]);
});

test("a stream that wants its race's summary asks for it on every subscribe, resumes included", () => {
  const stream = new RaceStream(7, { summary: true });
  assert.deepEqual(stream.subscribe(), { type: "subscribe", race_id: 7, summary: true });
  stream.receive(initial("e1"));
  stream.receive(odds(1));
  assert.deepEqual(stream.subscribe(), { type: "subscribe", race_id: 7, last_seq: 1, epoch: "e1", summary: true });
});

test("after a reconnect it resumes from the last seq, and keeps its history only if the server says so", () => {
  const stream = streamAt(3);
  assert.deepEqual(stream.subscribe(), { type: "subscribe", race_id: 7, last_seq: 3, epoch: "e1" });
  assert.deepEqual(types(stream.receive(initial("e1"))), []); // held for the answer
  assert.deepEqual(types(stream.receive({ type: "subscribed", race_id: 7, seq: 5, resumed: true })), [
    ["initial_state", true],
    ["subscribed", false],
  ]);
  assert.deepEqual(stream.receive(odds(4)).ask, null);

  const refused = streamAt(3);
  refused.subscribe();
  refused.receive(initial("e1"));
  assert.deepEqual(types(refused.receive({ type: "subscribed", race_id: 7, seq: 90, resumed: false })), [
    ["initial_state", false],
    ["subscribed", false],
  ]);
  assert.equal(refused.lastSeq, null); // what this connection sends next is where it stands
});

test("a skipped seq asks for what is missing, with the epoch", () => {
  const stream = streamAt(2);
  const { ask, deliver } = stream.receive(odds(5));
  assert.deepEqual(ask, { type: "subscribe", race_id: 7, last_seq: 2, epoch: "e1" });
  assert.equal(deliver.length, 1); // the update itself still shows
  assert.equal(stream.lastSeq, 5);
  assert.equal(stream.receive(odds(3)).ask, null); // a late one fills the gap and moves nothing back
  assert.equal(stream.lastSeq, 5);
});

test("a reset race starts again from its new state", () => {
  const stream = streamAt(4);
  assert.deepEqual(stream.restart(), { type: "subscribe", race_id: 7 });
  assert.deepEqual(types(stream.receive(initial("e2"))), [["initial_state", false]]);
  stream.receive(odds(1));
  assert.deepEqual(stream.subscribe(), { type: "subscribe", race_id: 7, last_seq: 1, epoch: "e2" });
});

test("reconnects back off exponentially with jitter, up to 30 s", () => {
  assert.equal(retryDelayMs(0, () => 0), 250);
  assert.equal(retryDelayMs(0, () => 1), 500);
  assert.equal(retryDelayMs(3, () => 0.5), 3000);
  assert.equal(retryDelayMs(20, () => 1), 30000);
});

test("frames go out within the server's rate: a burst, then a few a second", () => {
  const budget = new FrameBudget({ burst: 8, perSecond: 4, nowMs: 0 });
  const waits = Array.from({ length: 10 }, () => budget.take(0));
  assert.deepEqual(waits.slice(0, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(waits[8], 250); // not counted: it waits
  assert.equal(budget.take(250), 0);
  assert.equal(budget.take(250), 250);
  assert.equal(budget.take(10_000), 0); // refilled, never past the burst
  assert.equal([...Array(10)].map(() => budget.take(10_000)).filter((wait) => wait === 0).length, 7);
});
