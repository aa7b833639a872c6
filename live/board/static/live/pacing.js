// How fast the board's socket goes: how long it waits between attempts to connect, and how many
// frames it sends a second, within what the server allows (docs/protocol.md: 5 a second on
// average, bursts of 10, counted as they arrive). Pure: the socket keeps the clock.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;

// "Equal jitter": half the exponential delay, plus a random share of the other half, so that a
// restarted server is not hit by every browser at the same instant.
export function retryDelayMs(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}

// A little inside the server's budget: a network that bunches frames sent apart must not push a
// page that subscribes to a whole race day over it (4429 would close the connection).
export const FRAME_BURST = 8;
export const FRAMES_PER_S = 4;

// A token bucket: up to `burst` frames at once, then `perSecond`.
export class FrameBudget {
  constructor({ burst = FRAME_BURST, perSecond = FRAMES_PER_S, nowMs = 0 } = {}) {
    this.burst = burst;
    this.perSecond = perSecond;
    this.tokens = burst;
    this.at = nowMs;
  }

  // 0 if a frame may go now (and it is counted), else how many ms until one may.
  take(nowMs) {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, nowMs - this.at) / 1000) * this.perSecond);
    this.at = nowMs;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }
}
