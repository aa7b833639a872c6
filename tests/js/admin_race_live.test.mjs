// The admin race page's live box (races/static/races/race-live-state.js) and what it needs of the
// board's socket (follow and unfollow a race while connected): `node --test tests/js/`.
// The page's modules import each other as the server serves them, /static/races/ beside
// /static/live/: the test lays copies of the two folders out so.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = resolve(fileURLToPath(import.meta.url), "../../..");
const served = mkdtempSync(join(tmpdir(), "static-"));
// Copies, not links: Node resolves a link to where it points, and the layout would be lost.
cpSync(join(repo, "races/static/races"), join(served, "races"), { recursive: true });
cpSync(join(repo, "live/board/static/live"), join(served, "live"), { recursive: true });
after(() => rmSync(served, { recursive: true, force: true }));
const load = (path) => import(pathToFileURL(join(served, path)).href);

const { followsRace, oddsRows, statusMoved } = await load("races/race-live-state.js");
const { applyInitialState, applyOdds, applyRaceStatus, applyStarter, createState } = await load("live/state.js");

const starter = (horseId, number, extra = {}) => ({
  horse_id: horseId, runner_number: number, horse_name: `Horse ${horseId}`, driver_name: null, placing: null,
  did_not_finish: false, scratched: false, ...extra,
});
const card = (starters, status = "open") => ({
  type: "initial_state", data: { race: { status, race_datetime: "2026-12-04T19:30:00+13:00" }, starters },
});
const market = (timestamp, prices) => ({ timestamp, odds: prices.map(([horse_id, odds]) => ({ horse_id, odds })) });

test("the race's stream is followed only while its market is up", () => {
  assert.deepEqual(
    ["scheduled", "open", "closed", "interim", "protest", "official", "abandoned"].filter(followsRace),
    ["open"],
  );
});

test("the odds board lists runners in number order, the favourite marked, the scratched without a price", () => {
  const state = createState({ status: "open" });
  applyInitialState(state, card([starter(3, 2), starter(1, 1), starter(2, 3, { scratched: true })]));
  applyOdds(state, market("2026-12-04T06:20:00Z", [[1, 4.5], [3, 2.2], [2, 1.5]]));

  assert.deepEqual(oddsRows(state), [
    { horseId: 1, number: 1, name: "Horse 1", scratched: false, odds: 4.5, favourite: false },
    { horseId: 3, number: 2, name: "Horse 3", scratched: false, odds: 2.2, favourite: true },
    { horseId: 2, number: 3, name: "Horse 2", scratched: true, odds: null, favourite: false },
  ]);
});

test("new odds move the favourite; a late scratching takes the favourite's price away", () => {
  const state = createState({ status: "open" });
  applyInitialState(state, card([starter(1, 1), starter(2, 2)]));
  applyOdds(state, market("2026-12-04T06:20:00Z", [[1, 2.0], [2, 3.0]]));
  applyOdds(state, market("2026-12-04T06:20:07Z", [[1, 3.4], [2, 1.9]]));
  assert.deepEqual(oddsRows(state).map((r) => [r.odds, r.favourite]), [[3.4, false], [1.9, true]]);

  applyStarter(state, { change: "scratched", starter: starter(2, 2, { scratched: true }) });
  assert.deepEqual(oddsRows(state).map((r) => [r.odds, r.favourite, r.scratched]), [[3.4, true, false], [null, false, true]]);
});

test("an abandoned race shows no prices, as its page does when loaded", () => {
  const state = createState({ status: "open" });
  applyInitialState(state, card([starter(1, 1)]));
  applyOdds(state, market("2026-12-04T06:20:00Z", [[1, 2.0]]));
  applyRaceStatus(state, statusMoved(state, "abandoned"));

  assert.deepEqual(oddsRows(state).map((r) => [r.odds, r.favourite]), [[null, false]]);
});

test("a status learnt from a summary moves the race as a race_status would, its start kept", () => {
  const state = createState({ status: "scheduled" });
  assert.deepEqual(statusMoved(state, "open"), { status: "open", previous: "scheduled", race_datetime: null, reason: null });
  applyInitialState(state, card([starter(1, 1)], "open"));
  assert.deepEqual(statusMoved(state, "closed"), {
    status: "closed", previous: "open", race_datetime: "2026-12-04T19:30:00+13:00", reason: null,
  });
});

// --- The board's socket: following a race once connected, and no longer -------------------------

class FakeWebSocket {
  static OPEN = 1;
  static made = [];
  constructor(url) { this.url = url; this.sent = []; this.listeners = {}; this.readyState = 0; FakeWebSocket.made.push(this); }
  addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  emit(type, event = {}) {
    if (type === "open") this.readyState = 1;
    for (const listener of this.listeners[type] || []) listener(event);
  }
  receive(message) { this.emit("message", { data: JSON.stringify(message) }); }
}

test("a race followed or left while connected is subscribed or unsubscribed at once", async () => {
  globalThis.WebSocket = FakeWebSocket;
  const { LiveSocket } = await load("live/socket.js");
  const seen = [];
  const live = new LiveSocket({ url: "ws://test/ws/live", onMessage: (message) => seen.push(message.type) });
  live.watch({ meeting_id: "NZ_20261204_ADD" });
  live.start();
  const socket = FakeWebSocket.made.at(-1);
  socket.emit("open");

  live.follow(7);
  live.follow(7); // followed already: nothing more
  socket.receive({ type: "initial_state", race_id: 7, epoch: "e1", data: { race: {}, starters: [] } });
  live.unfollow(7);
  live.unfollow(7);
  socket.receive({ type: "odds_update", race_id: 7, seq: 1, timestamp: "2026-12-04T06:20:00Z", odds: [] }); // in flight

  assert.deepEqual(socket.sent, [
    { type: "subscribe", meeting_id: "NZ_20261204_ADD" },
    { type: "subscribe", race_id: 7 },
    { type: "unsubscribe", race_id: 7 },
  ]);
  assert.deepEqual(seen, ["initial_state"]);
  live.stop();
});
