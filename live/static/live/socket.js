// A race's WebSocket that keeps itself connected: exponential backoff with jitter between
// attempts, no retry for a race that does not exist (close code 4004), and after a reconnect a
// resume from the last update seen (subscribe with last_seq and epoch), so nothing is missed.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;
const RACE_NOT_FOUND = 4004;

export class RaceSocket {
  constructor({ url, raceId, onMessage, onStatus }) {
    this.url = url;
    this.raceId = raceId;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    // Where this page's copy of the race stands in the race's numbered updates.
    this.epoch = null;
    this.lastSeq = null;
    this.resuming = false;
  }

  start() {
    this.connect();
  }

  connect() {
    this.onStatus({ state: "connecting" });
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.onStatus({ state: "live" });
      this.subscribe(socket);
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.receive(socket, message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      if (event.code === RACE_NOT_FOUND) {
        this.onStatus({ state: "gone", reason: event.reason || "Race not found" });
        return;
      }
      this.retry();
    });
  }

  subscribe(socket) {
    const request = { type: "subscribe", race_id: this.raceId };
    this.resuming = this.epoch !== null && this.lastSeq !== null;
    if (this.resuming) Object.assign(request, { last_seq: this.lastSeq, epoch: this.epoch });
    socket.send(JSON.stringify(request));
  }

  receive(socket, message) {
    switch (message.type) {
      case "initial_state":
        // On a reconnect the page keeps what it has until the server says whether the resume
        // worked; if not, a fresh initial_state follows and replaces everything.
        this.onMessage(message, { keepHistory: this.resuming });
        return;
      case "subscribed":
        if (typeof message.epoch === "string") {
          // Not resumed: the numbering starts from the first update that follows (the race's
          // latest), or from 0 if the race has none yet.
          if (!message.resumed) this.lastSeq = message.seq === 0 ? 0 : null;
          this.epoch = message.epoch;
        }
        this.resuming = false;
        break;
      case "odds_update":
      case "result_update":
        if (Number.isInteger(message.seq)) {
          if (this.lastSeq !== null && message.seq > this.lastSeq + 1) {
            // A gap: ask for what is missing (the server replays it; the state merges by time).
            socket.send(JSON.stringify({ type: "subscribe", race_id: this.raceId, last_seq: this.lastSeq, epoch: this.epoch }));
          }
          this.lastSeq = this.lastSeq === null ? message.seq : Math.max(this.lastSeq, message.seq);
        }
        break;
      default:
        break;
    }
    this.onMessage(message, {});
  }

  retry() {
    // "Equal jitter": half the exponential delay, plus a random share of the other half, so a
    // restarted server is not hit by every browser at the same instant.
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt);
    const delayMs = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.onStatus({ state: "reconnecting", delayMs });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delayMs);
  }
}
