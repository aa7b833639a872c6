// Drives live/static/live/socket.js with a fake WebSocket; prints what the page sent and saw.
const sockets = [];
class FakeWebSocket {
  constructor(url) { this.url = url; this.sent = []; this.listeners = {}; sockets.push(this); }
  addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
  send(text) { this.sent.push(JSON.parse(text)); }
  emit(type, event = {}) { for (const listener of this.listeners[type] || []) listener(event); }
  receive(message) { this.emit("message", { data: JSON.stringify(message) }); }
}
globalThis.WebSocket = FakeWebSocket;
globalThis.setTimeout = (callback) => { callback(); return 0; }; // reconnect at once
globalThis.clearTimeout = () => {};

const { RaceSocket } = await import(process.argv[2]);
const seen = [];
const raceSocket = new RaceSocket({
  url: "ws://test/ws/races/7", raceId: 7,
  onMessage: (message, options) => seen.push([message.type, message.seq ?? null, options.keepHistory ?? false]),
  onStatus: () => {},
});
const initial = { type: "initial_state", race_id: 7, data: { race: {}, starters: [], starter_count: 0 } };
const odds = (seq) => ({ type: "odds_update", race_id: 7, seq, timestamp: "2026-12-04T06:00:00+00:00", odds: [] });

raceSocket.start();
let socket = sockets.at(-1);
socket.emit("open");
socket.receive(initial);
socket.receive({ type: "subscribed", race_id: 7, epoch: "e1", seq: 0 });
socket.receive(odds(1));
socket.receive(odds(2));
socket.emit("close", { code: 1006 }); // the phone changes cell

socket = sockets.at(-1);
socket.emit("open");
socket.receive(initial);
socket.receive({ type: "subscribed", race_id: 7, epoch: "e1", seq: 4, resumed: true });
socket.receive(odds(3));
socket.receive(odds(4));
socket.receive(odds(6)); // 5 went missing

console.log(JSON.stringify({ sent: sockets.map((s) => s.sent), seen }));
