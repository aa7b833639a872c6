// The top of a race's admin page, kept live over the server's own /ws/live with the race board's
// modules, as any client of the protocol (docs/protocol.md): the race's status and the viewers
// from its meeting's summaries; its odds from the race's stream while the market is up. Without
// this script the page still shows the race as it was when loaded.

import { showConnection } from "../live/connection.js";
import { watching } from "../live/format.js";
import { LiveSocket } from "../live/socket.js";
import { applyInitialState, applyOdds, applyRaceStatus, applyStarter, createState, raceStatus } from "../live/state.js";
import { summariesIn } from "../live/summaries.js";
import { followsRace, oddsRows, statusMoved } from "./race-live-state.js";

const config = JSON.parse(document.getElementById("race-live-config").textContent);
const statusNode = document.getElementById("race-live-status");
const viewersNode = document.getElementById("race-live-viewers");
const staleNode = document.getElementById("race-live-stale");
const actionsNode = document.getElementById("race-live-actions");
const oddsBody = document.querySelector("#race-live-odds tbody");
const oddsNote = document.getElementById("race-live-odds-note");
const connection = document.getElementById("race-live-connection");

// As the page was rendered: the venue's clock, whatever the browser's time zone.
const venueTime = new Intl.DateTimeFormat("en-GB", { timeZone: config.timeZone, timeStyle: "medium" });
const state = createState({ status: config.status });
let following = false;

function onMessage(message) {
  switch (message.type) {
    case "initial_state":
      applyInitialState(state, message);
      break;
    case "odds_update":
      if (!applyOdds(state, message)) return;
      break;
    case "race_status":
      applyRaceStatus(state, message);
      break;
    case "starter_update":
      applyStarter(state, message);
      break;
    default:
      return; // subscribed, results: the race's page below has them on reload
  }
  render();
}

// The race's summary in its meeting's: its status all along, and how many watch.
function onSummary(message) {
  const race = summariesIn(message).find((summary) => summary.id === config.raceId);
  if (!race) return;
  if (typeof race.viewers === "number") {
    viewersNode.textContent = watching(race.viewers, { includesYou: following }) || "No one watching";
    viewersNode.hidden = false;
  }
  if (race.status !== raceStatus(state)) {
    applyRaceStatus(state, statusMoved(state, race.status));
    render();
  }
}

function onStatus(status) {
  showConnection(connection, status);
  if (status.state !== "live") viewersNode.hidden = true; // a count from before is no longer known
}

function cell(tag, text, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null && text !== undefined) node.textContent = text;
  return node;
}

function render() {
  const status = raceStatus(state);
  statusNode.dataset.status = status;
  statusNode.textContent = config.statusLabels[status] ?? status;
  // What is due and the moves were the status's at load: stale once it moves.
  const stale = status !== config.status;
  staleNode.hidden = !stale;
  actionsNode.hidden = stale;
  if (state.race !== null) renderOdds();
  if (followsRace(status) !== following) {
    following = !following;
    if (following) live.follow(config.raceId);
    else live.unfollow(config.raceId); // the odds stay as they last were
  }
}

function renderOdds() {
  const rows = oddsRows(state).map((runner) => {
    const row = cell("tr");
    row.dataset.horseId = runner.horseId;
    if (runner.scratched) row.classList.add("scratched");
    if (runner.favourite) row.classList.add("favourite");
    const horse = cell("th", runner.name, "horse");
    horse.scope = "row";
    if (runner.favourite) horse.append(" ", cell("span", "Fav", "fav"));
    const odds = cell("td", null, "odds");
    if (runner.scratched) {
      const scr = cell("abbr", "SCR");
      scr.title = "Scratched";
      odds.append(scr);
    } else odds.textContent = runner.odds === null ? "–" : runner.odds.toFixed(2);
    row.append(cell("td", runner.number ?? "–", "num"), horse, odds);
    return row;
  });
  oddsBody.replaceChildren(...rows);
  if (state.lastOddsAt !== null) oddsNote.textContent = `Latest odds at ${venueTime.format(state.lastOddsAt)}`;
}

const scheme = window.location.protocol === "https:" ? "wss" : "ws";
const live = new LiveSocket({ url: `${scheme}://${window.location.host}${config.socketPath}`, onMessage, onSummary, onStatus });
live.watch({ meeting_id: config.meetingId });
if (followsRace(raceStatus(state))) {
  following = true;
  live.follow(config.raceId);
}
live.start();
