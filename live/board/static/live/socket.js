// The board's one WebSocket, to /ws/live, that keeps itself connected: exponential backoff with
// jitter between attempts; on every connection it subscribes again to each race the page follows
// (resuming each from the last update seen: race-stream.js) and to each meeting's or day's
// summaries (a fresh meeting_state follows). Frames go out within the server's rate
// (pacing.js), so a page may subscribe to a whole race day at once.

import { FrameBudget, retryDelayMs } from "./pacing.js";
import { RaceStream } from "./race-stream.js";

// Close codes after which trying again cannot help: no such endpoint (an older server).
const NO_SUCH_ENDPOINT = 4404;
// error codes on /ws/live about one subscription (docs/protocol.md).
const NOT_FOUND = 4004;
const RACE_RESET = 4409;
// What /ws/live sends that is about no race's stream.
const SUMMARIES = new Set(["meeting_state", "race_summary"]);
const ANSWERS = new Set(["unsubscribed", "pong"]);

export class LiveSocket {
  // onMessage(message, options): a followed race's message, as /ws/races/{id} would send it;
  // onSummary(message): meeting_state or race_summary; onStatus({ state, delayMs, reason }).
  constructor({ url, onMessage = () => {}, onSummary = () => {}, onStatus = () => {} }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onSummary = onSummary;
    this.onStatus = onStatus;
    this.streams = new Map(); // race id -> RaceStream
    this.targets = []; // { meeting_id } or { date }
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.outbox = []; // frames waiting for the rate to allow them
    this.budget = null;
    this.flushTimer = null;
    this.stopped = false;
  }

  // Follow a race: at once if connected, else on connecting (and again on every reconnection).
  // With { summary: true } the race's race_summary comes too (to onSummary): its viewers.
  follow(raceId, { summary = false } = {}) {
    if (this.streams.has(raceId)) return;
    const stream = new RaceStream(raceId, { summary });
    this.streams.set(raceId, stream);
    if (this.socket?.readyState === WebSocket.OPEN) this.send(stream.subscribe());
  }

  // Follow a race no more: what still arrives of it is dropped.
  unfollow(raceId) {
    if (!this.streams.delete(raceId)) return;
    if (this.socket?.readyState === WebSocket.OPEN) this.send({ type: "unsubscribe", race_id: raceId });
  }

  watch(target) {
    this.targets.push(target);
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close();
  }

  connect() {
    this.onStatus({ state: "connecting" });
    const socket = new WebSocket(this.url);
    this.socket = socket;
    this.outbox = [];
    this.budget = new FrameBudget({ nowMs: Date.now() });
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.onStatus({ state: "live" });
      for (const stream of this.streams.values()) this.send(stream.subscribe());
      for (const target of this.targets) this.send({ type: "subscribe", ...target });
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.stopped) return;
      if (event.code === NO_SUCH_ENDPOINT) {
        this.onStatus({ state: "gone", reason: event.reason || "Not found" });
        return;
      }
      this.retry();
    });
  }

  receive(message) {
    if (SUMMARIES.has(message.type)) {
      this.onSummary(message);
      return;
    }
    if (message.type === "error") {
      this.refused(message);
      return;
    }
    if (ANSWERS.has(message.type)) return;
    const stream = this.streams.get(message.race_id);
    if (!stream) return; // a race this page does not follow (any more)
    const { deliver, ask } = stream.receive(message);
    if (ask) this.send(ask);
    for (const [each, options] of deliver) this.onMessage(each, options);
  }

  // An error about one subscription: the others carry on.
  refused(message) {
    const stream = this.streams.get(message.race_id);
    if (stream && message.code === RACE_RESET) {
      this.send(stream.restart()); // numbered afresh: the race anew, from its initial_state
    } else if (stream && message.code === NOT_FOUND) {
      this.streams.delete(message.race_id);
      this.onStatus({ state: "gone", reason: message.message || "Race not found" });
      this.stop();
    } else if (message.code === NOT_FOUND) {
      // A meeting or day that is not there: asking again on the next connection cannot help.
      const named = (t) => ("meeting_id" in t ? t.meeting_id === message.meeting_id : t.date === message.date);
      this.targets = this.targets.filter((target) => !named(target));
    }
  }

  send(message) {
    this.outbox.push(JSON.stringify(message));
    this.flush();
  }

  flush() {
    const socket = this.socket;
    while (this.outbox.length && socket.readyState === WebSocket.OPEN) {
      const waitMs = this.budget.take(Date.now());
      if (waitMs > 0) {
        clearTimeout(this.flushTimer);
        this.flushTimer = setTimeout(() => this.socket === socket && this.flush(), waitMs);
        return;
      }
      socket.send(this.outbox.shift());
    }
  }

  retry() {
    const delayMs = retryDelayMs(this.attempt);
    this.attempt += 1;
    this.onStatus({ state: "reconnecting", delayMs });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delayMs);
  }
}
