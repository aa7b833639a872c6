// The race page, live over /ws/live with the same protocol as any third-party client: the race's
// stream (exactly what /ws/races/{id} sends), and its race_summary for how many watch.

import { colourFor, marketChart, sparkline } from "./charts.js";
import { showConnection } from "./connection.js";
import { timeSpan, watching } from "./format.js";
import { LiveSocket } from "./socket.js";
import {
  applyCard, applyInitialState, applyInterimResult, applyOdds, applyRaceStatus, applyResult, applyStarter,
  countsDown, createState, currentOdds, drawnDriver, driverChanged, favouriteHorseId, isDeadHeat, localTime,
  movement, placingOf, previousOdds, raceNote, raceStatus, sortedStarters, starterOf,
} from "./state.js";
import { summariesIn } from "./summaries.js";

const config = JSON.parse(document.getElementById("board-config").textContent);
const raceState = document.getElementById("race-state");
const state = createState({ status: raceState.dataset.state, result: config.result, notes: config.notes });
let sortBy = "number";
let historyLoad = 0; // which connection's history fetch is current
let chartWidth = null; // the width the market chart was drawn for

const runnersTable = document.getElementById("runners");
const runnersBody = runnersTable.querySelector("tbody");
const connection = document.getElementById("connection");
const countdown = document.getElementById("countdown");
const chart = document.getElementById("market-chart");
const resultSection = document.getElementById("result");
const resultList = document.getElementById("result-list");
const announcer = document.getElementById("announcer");
const raceDelay = document.getElementById("race-delay");
const raceNoteLine = document.getElementById("race-note");
const placingHeading = document.getElementById("placing-heading");
const resultHeading = document.getElementById("result-heading");
const resultNote = document.getElementById("result-note");
const viewers = document.getElementById("viewers");

// --- Messages --------------------------------------------------------------------------------

function onMessage(message, { keepHistory = false } = {}) {
  switch (message.type) {
    case "initial_state":
      if (keepHistory && state.race) {
        applyCard(state, message); // resuming: the missed updates follow
        renderConditions();
        render();
        break;
      }
      applyInitialState(state, message);
      renderConditions();
      render();
      loadHistory(); // the market so far; live updates merge in as they come
      break;
    case "odds_update":
      if (applyOdds(state, message)) render();
      break;
    case "race_status": {
      const before = raceStatus(state);
      applyRaceStatus(state, message);
      renderConditions(); // a delay moves the start time
      render();
      announceStatus(message, before);
      break;
    }
    case "starter_update": {
      const before = applyStarter(state, message);
      render();
      announceStarter(message, before);
      break;
    }
    case "interim_result":
      applyInterimResult(state, message);
      render();
      announceResult();
      break;
    case "result_update":
      applyResult(state, message);
      render();
      announceResult();
      break;
    default:
      break; // subscribed, error, and types this page does not know: nothing to show
  }
}

async function loadHistory() {
  const load = ++historyLoad;
  let url = config.oddsHistoryUrl;
  try {
    while (url && load === historyLoad) {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const page = await response.json();
      for (const snapshot of page.results) applyOdds(state, snapshot);
      url = page.next;
    }
    if (load === historyLoad) render();
  } catch {
    // The live stream still works without the history; the charts start from now.
  }
}

// --- Rendering -------------------------------------------------------------------------------

// As live/board/labels.py says a placing: 1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st.
function ordinal(n) {
  if (n % 100 >= 10 && n % 100 <= 20) return `${n}th`;
  return `${n}${{ 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th"}`;
}
const runnerIndex = (horseId) => state.starters.findIndex((s) => s.horse_id === horseId);

function cell(tag, text, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null && text !== undefined) node.textContent = text;
  return node;
}

// An abbreviation with its meaning: "DH" (dead heat), "SCR" (scratched).
function abbr(text, title, className) {
  const node = cell("abbr", text, className);
  node.title = title;
  return node;
}

function render() {
  renderRaceState();
  renderRunners();
  renderChart();
  renderResult();
  tickCountdown();
}

const statusLabel = (status) => config.statusLabels?.[status] ?? status;

function renderRaceState() {
  const status = raceStatus(state);
  raceState.dataset.state = status;
  raceState.querySelector(".label").textContent = statusLabel(status);
  raceDelay.hidden = !(state.delay && countsDown(state));
  const note = raceNote(state);
  raceNoteLine.textContent = note ?? "";
  raceNoteLine.hidden = note === null;
}

function renderRunners() {
  const favourite = favouriteHorseId(state);
  const rows = sortedStarters(state, sortBy).map((starter) => {
    const row = document.createElement("tr");
    row.dataset.horseId = starter.horse_id;
    const price = currentOdds(state, starter.horse_id);
    const move = movement(state, starter.horse_id);
    const placing = placingOf(state, starter.horse_id);
    const scratched = starter.scratched === true;
    if (scratched) row.classList.add("scratched");
    else if (placing && placing.placing === 1) row.classList.add("winner");
    if (starter.horse_id === favourite) row.classList.add("favourite");
    row.append(
      cell("td", starter.runner_number ?? "–", "num"),
      cell("td", starter.handicap_m !== null ? `${starter.handicap_m} m` : (starter.barrier ?? "–"), "num"),
    );
    const horse = cell("th", null, "horse");
    horse.scope = "row";
    horse.append(cell("span", starter.horse_name ?? "–", "name"));
    if (scratched) horse.append(cell("span", " (scratched)", "visually-hidden"));
    if (starter.horse_id === favourite) horse.append(" ", cell("span", "Fav", "fav-badge"));
    const driver = cell("td", starter.driver_name ?? "–", "wide-only");
    if (driverChanged(state, starter.horse_id)) {
      const tag = cell("span", "changed", "tag changed");
      tag.title = `Driver changed: drawn with ${drawnDriver(state, starter.horse_id) ?? "no driver"}`;
      driver.append(" ", tag);
      // On a phone the driver's column is hidden: the new driver goes under the horse's name.
      const under = cell("span", `Driver: ${starter.driver_name ?? "–"} `, "driver-change phone-only");
      under.append(cell("span", "new", "tag changed"));
      horse.append(under);
    }
    row.append(horse, driver, cell("td", starter.trainer_name ?? "–", "wide-only"));

    const odds = cell("td", null, `num odds ${move}`);
    if (scratched) {
      odds.className = "num odds";
      odds.append(abbr("SCR", "Scratched", "scr"));
    } else if (price !== null && raceStatus(state) !== "abandoned") {
      const mark = { shortening: "▼", drifting: "▲", steady: "" }[move];
      const before = previousOdds(state, starter.horse_id);
      if (mark) odds.append(cell("span", mark, "mark"), " ");
      odds.append(cell("span", price.toFixed(2), "price"));
      if (before !== null && move !== "steady") odds.title = `${move} from ${before.toFixed(2)}`;
    } else {
      odds.textContent = "–";
    }
    const trend = cell("td", null, "trend");
    trend.append(sparkline(state.history.get(starter.horse_id) || [], { colour: colourFor(runnerIndex(starter.horse_id)) }));
    const result = cell("td", null, `num placing${state.result?.official ? "" : " interim"}`);
    if (placing && !placing.finished) result.textContent = "DNF";
    else if (placing) {
      result.textContent = ordinal(placing.placing);
      if (isDeadHeat(state, placing.placing)) result.append(" ", abbr("DH", "Dead heat", "tag dh"));
    }
    row.append(odds, trend, result);
    return row;
  });
  runnersBody.replaceChildren(...rows);
  runnersTable.classList.toggle("has-result", state.result !== null);
  placingHeading.textContent = state.result && !state.result.official ? "Interim" : "Result";
}

function renderChart() {
  const series = state.starters.map((starter, index) => ({
    label: String(starter.runner_number ?? starter.horse_name),
    colour: colourFor(index),
    points: state.history.get(starter.horse_id) || [],
  }));
  // Drawn at the size it is shown, so that its labels keep their size on a phone.
  const width = Math.round(chart.clientWidth) || 720;
  chart.replaceChildren(marketChart(series, { width, height: Math.round(Math.min(320, Math.max(200, width * 0.5))) }));
  chartWidth = width;
}

function runner(horseId) {
  return starterOf(state, horseId) || { horse_name: `horse ${horseId}`, runner_number: null };
}

function renderResult() {
  if (!state.result) {
    resultSection.hidden = true;
    return;
  }
  const official = state.result.official;
  const items = state.result.results.map((entry) => {
    const starter = runner(entry.horse_id);
    const item = document.createElement("li");
    if (entry.finished && entry.placing === 1) item.className = "winner";
    if (!entry.finished) item.className = "dnf";
    item.append(
      cell("span", entry.finished ? String(entry.placing) : "DNF", "place"), " ",
      cell("span", `#${starter.runner_number ?? "–"}`, "no"), ` ${starter.horse_name}`,
    );
    if (entry.finished && isDeadHeat(state, entry.placing)) item.append(" ", abbr("DH", "Dead heat", "tag dh"));
    if (!entry.finished) item.append(" – did not finish");
    return item;
  });
  resultList.replaceChildren(...items);
  resultList.classList.toggle("interim", !official);
  resultHeading.textContent = official ? "Result" : "Interim result";
  resultNote.textContent = raceStatus(state) === "protest"
    ? "Under protest: these placings may change."
    : "Not yet official: these placings may change.";
  resultNote.hidden = official;
  resultSection.hidden = false;
}

// --- Announcements (the polite live region): changes a fan must hear, not every price ------

function say(text) {
  announcer.textContent = text;
}

function numbered(starter) {
  return `number ${starter.runner_number ?? ""} ${starter.horse_name ?? ""}`.replace(/\s+/g, " ").trim();
}

function announceResult() {
  const finishers = state.result.results.filter((r) => r.finished).slice(0, 3);
  const words = finishers.map((r) => {
    const heat = isDeadHeat(state, r.placing) ? " dead heat" : "";
    return `${ordinal(r.placing)}${heat} ${numbered(runner(r.horse_id))}`;
  });
  say(`${state.result.official ? "Official result" : "Interim result, not yet official"}: ${words.join(", ")}.`);
}

function announceStatus(message, before) {
  if (message.status === message.previous) {
    const to = localTime(message.race_datetime);
    if (to) say(`Start delayed to ${to}${message.reason ? `: ${message.reason}` : ""}.`);
    return;
  }
  // Interim and official are announced with their placings, which follow at once.
  if (message.status === "interim" || message.status === "official" || message.status === before) return;
  const words = {
    open: "Market open.",
    closed: "Betting closed: they are racing.",
    protest: "Protest: the placings may change.",
    abandoned: "Race abandoned: there is no result.",
  }[message.status] ?? `${statusLabel(message.status)}.`;
  say(message.reason ? `${words} ${message.reason}` : words);
}

function announceStarter({ change, starter }, before) {
  const who = numbered(starter);
  if (change === "scratched") say(`Scratched: ${who}.`);
  else if (change === "reinstated") say(`Reinstated: ${who}.`);
  else if (change === "driver_changed") {
    const was = before?.driver_name ? `, replacing ${before.driver_name}` : "";
    say(`Driver change: ${starter.driver_name ?? "no driver"} now drives ${who}${was}.`);
  }
}

function renderConditions() {
  for (const node of document.querySelectorAll("[data-field]")) {
    const value = state.race[node.dataset.field];
    if (node.dataset.field === "distance_m") node.textContent = `${value} m`;
    else if (node.dataset.field === "race_datetime") {
      if (value) {
        node.setAttribute("datetime", value);
        node.textContent = localTime(value) ?? node.textContent;
      }
    } else node.textContent = value ? value[0].toUpperCase() + value.slice(1) : "–";
  }
}

// --- Viewers, connection, countdown, sorting -------------------------------------------------

// The race's summary (subscribed with the race): how many watch (this page among them), counted
// by the server once a second. Shown as it changes, never announced.
function onSummary(message) {
  const race = summariesIn(message).find((summary) => summary.id === config.raceId);
  if (!race || typeof race.viewers !== "number") return;
  const text = watching(race.viewers, { includesYou: true });
  if (viewers.textContent !== text) viewers.textContent = text;
  viewers.hidden = false;
}

function onStatus(status) {
  showConnection(connection, status);
  if (status.state !== "live") viewers.hidden = true; // a count from before is no longer known
}

function tickCountdown() {
  const start = state.race?.race_datetime ?? document.querySelector("time[data-field=race_datetime]")?.getAttribute("datetime");
  if (!countsDown(state)) {
    countdown.textContent = ""; // they are racing, or it is over: the race's status says so
    return;
  }
  if (!start) return;
  const seconds = Math.round((Date.parse(start) - Date.now()) / 1000);
  countdown.textContent = seconds >= 0 ? `· starts in ${timeSpan(seconds)}` : `· started ${timeSpan(seconds)} ago`;
}

new ResizeObserver(() => {
  if (Math.round(chart.clientWidth) !== chartWidth) renderChart();
}).observe(chart);

for (const button of document.querySelectorAll("[data-sort]")) {
  button.addEventListener("click", () => {
    sortBy = button.dataset.sort;
    for (const other of document.querySelectorAll("[data-sort]")) other.setAttribute("aria-pressed", String(other === button));
    renderRunners();
  });
}

const scheme = window.location.protocol === "https:" ? "wss" : "ws";
const live = new LiveSocket({ url: `${scheme}://${window.location.host}${config.socketPath}`, onMessage, onSummary, onStatus });
// The race's own summary for its viewers, not its meeting's: a tenth of the frames.
live.follow(config.raceId, { summary: true });
live.start();
tickCountdown();
setInterval(tickCountdown, 1000);
