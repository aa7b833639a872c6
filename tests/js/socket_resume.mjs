// Drives live/board/static/live/socket.js with a fake WebSocket; prints what the page opened, sent and saw.
const sockets = [];
class FakeWebSocket {
  static OPEN = 1;
  constructor(url) { this.url = url; this.sent = []; this.listeners = {}; this.readyState = 0; sockets.push(this); }
  addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  emit(type, event = {}) {
    if (type === "open") this.readyState = 1;
    if (type === "close") this.readyState = 3;
    for (const listener of this.listeners[type] || []) listener(event);
  }
  receive(message) { this.emit("message", { data: JSON.stringify(message) }); }
}
globalThis.WebSocket = FakeWebSocket;
const timers = [];
globalThis.setTimeout = (callback) => timers.push(callback); // run by hand: a reconnect "after the delay"
globalThis.clearTimeout = () => {};
const runTimers = () => { while (timers.length) timers.shift()(); };

const { LiveSocket } = await import(process.argv[2]);
const seen = [];
const summaries = [];
const statuses = [];
const live = new LiveSocket({
  url: "ws://test/ws/live",
  onMessage: (message, options) => seen.push([message.type, message.seq ?? null, options.keepHistory ?? false]),
  onSummary: (message) => summaries.push([message.type, message.race_id ?? message.meeting_id]),
  onStatus: (status) => statuses.push(status.state),
});
live.follow(7);
live.watch({ meeting_id: "NZ_20261204_ADD" });
const initial = (epoch) => ({ type: "initial_state", race_id: 7, epoch, data: { race: {}, starters: [], starter_count: 0 } });
const odds = (seq, raceId = 7) => ({ type: "odds_update", race_id: raceId, seq, timestamp: "2026-12-04T06:00:00+00:00", odds: [] });

live.start();
let socket = sockets.at(-1);
socket.emit("open"); // subscribes to the race and to its meeting's summaries
socket.receive({ type: "meeting_state", meeting_id: "NZ_20261204_ADD", races: [] });
socket.receive(initial("e1"));
socket.receive({ type: "subscribed", race_id: 7, epoch: "e1", seq: 0 });
socket.receive(odds(1));
socket.receive({ type: "race_summary", race_id: 8, race: { id: 8 } }); // another race's summary: for the page
socket.receive(odds(2));
socket.receive(odds(5, 9)); // a race the page does not follow: nobody's
socket.emit("close", { code: 1006 }); // the phone changes cell
runTimers();

socket = sockets.at(-1); // resumes each race with subscribe, and watches the meeting again
socket.emit("open");
socket.receive(initial("e1"));
socket.receive({ type: "subscribed", race_id: 7, epoch: "e1", seq: 4, resumed: true });
// Every numbered update counts, whatever its type: a status, a starter's change ...
socket.receive({ type: "race_status", race_id: 7, seq: 3, status: "open", previous: "open" });
socket.receive({ type: "starter_update", race_id: 7, seq: 4, change: "scratched", starter: {} });
socket.receive(odds(6)); // 5 went missing
socket.receive({ type: "interim_result", race_id: 7, seq: 7, results: [] });
socket.receive({ type: "photo_finish", race_id: 7, seq: 8 }); // ... and a type the page does not know yet
socket.emit("close", { code: 4008 }); // too slow: reconnect and resume
runTimers();

socket = sockets.at(-1);
socket.emit("open");
socket.receive(initial("e1"));
socket.receive({ type: "subscribed", race_id: 7, epoch: "e1", seq: 8, resumed: true });
// The race office resets the race: numbered afresh, it starts again from its new state.
socket.receive({ type: "error", code: 4409, race_id: 7, message: "Race 7 was reset: subscribe again for its new state" });
socket.receive(initial("e2"));
socket.receive({ type: "subscribed", race_id: 7, epoch: "e2", seq: 0 });
socket.receive(odds(1));
socket.emit("close", { code: 1006 });
runTimers();

socket = sockets.at(-1); // too far behind, say: the server cannot resume
socket.emit("open");
socket.receive(initial("e2"));
socket.receive({ type: "subscribed", race_id: 7, epoch: "e2", seq: 90, resumed: false });
socket.receive(odds(90));
socket.receive({ type: "error", code: 4004, race_id: 7, message: "Race not found: no race with id 7" }); // deleted
socket.emit("close", { code: 1000 });
runTimers(); // no race: no reconnecting

console.log(JSON.stringify({ urls: sockets.map((s) => s.url), sent: sockets.map((s) => s.sent), seen, summaries, statuses }));
