// A race's WebSocket that keeps itself connected: exponential backoff with jitter between
// attempts, no retry for a race that does not exist (close code 4004).

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
      socket.send(JSON.stringify({ type: "subscribe", race_id: this.raceId }));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(message);
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
