// One race's stream as a page follows it on /ws/live: where the page stands in the race's
// numbered updates (its epoch and last seq), so that after a reconnect it resumes with
// subscribe's last_seq and epoch and is sent the updates it missed, in order, before live ones;
// whether that resume worked (the page keeps its odds history only if so); and, when a seq
// skips, what to ask for again. Pure: the socket sends what it says to.

export class RaceStream {
  // summary: also this race's race_summary (its viewers), asked for on every subscribe.
  constructor(raceId, { summary = false } = {}) {
    this.raceId = raceId;
    this.summary = summary;
    this.epoch = null;
    this.lastSeq = null;
    // Whether the stream's subscribe on this connection asked to resume: its initial_state then
    // waits for the answer (subscribed, resumed true or false).
    this.resuming = false;
    this.pendingInitial = null;
  }

  // The subscribe that opens the stream on a new connection: a resume once the page has had an
  // update, so that nothing is missed and nothing is sent twice.
  subscribe() {
    this.resuming = this.lastSeq !== null;
    this.pendingInitial = null;
    const message = this.lastSeq === null ? { type: "subscribe", race_id: this.raceId } : this.resumeFrom(this.lastSeq);
    if (this.summary) message.summary = true;
    return message;
  }

  // After the race was reset (its updates numbered afresh): the subscribe that starts it anew.
  restart() {
    this.lastSeq = null;
    this.epoch = null;
    return this.subscribe();
  }

  resumeFrom(lastSeq) {
    const message = { type: "subscribe", race_id: this.raceId, last_seq: lastSeq };
    if (this.epoch !== null) message.epoch = this.epoch;
    return message;
  }

  // Take one message of this race. Returns what goes to the page, in order, each with its
  // options ({ keepHistory: true } for a card that resumes), and a subscribe to send, if any.
  receive(message) {
    const deliver = [];
    let ask = null;
    if (message.type === "initial_state") {
      if (typeof message.epoch === "string") this.epoch = message.epoch;
      if (this.resuming) {
        this.resuming = false;
        this.pendingInitial = message;
        return { deliver, ask };
      }
      this.lastSeq = null;
      deliver.push([message, {}]);
      return { deliver, ask };
    }
    if (this.pendingInitial !== null) {
      // The answer to the resume, or anything else first: the resume did not happen.
      const resumed = message.type === "subscribed" && message.resumed === true;
      deliver.push([this.pendingInitial, { keepHistory: resumed }]);
      this.pendingInitial = null;
      if (!resumed) this.lastSeq = null; // start afresh from what this connection sends
    }
    if (message.type === "subscribed") {
      if (typeof message.epoch === "string") this.epoch = message.epoch;
    } else if (Number.isInteger(message.seq)) {
      // A numbered update: odds, a status, a starter's change, a result; or a type this page does
      // not know, which still holds its place in the race's numbering.
      if (this.lastSeq !== null && message.seq > this.lastSeq + 1) {
        // A gap: ask for what is missing (the server sends what this connection lacks; the
        // state merges by time).
        ask = this.resumeFrom(this.lastSeq);
      }
      this.lastSeq = this.lastSeq === null ? message.seq : Math.max(this.lastSeq, message.seq);
    }
    deliver.push([message, {}]);
    return { deliver, ask };
  }
}
