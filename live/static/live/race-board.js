// The race page, live over /ws/races/{id} with the same protocol as any third-party client.

import { colourFor, marketChart, sparkline } from "./charts.js";
import { RaceSocket } from "./socket.js";
import {
  applyCard, applyInitialState, applyOdds, applyResult, createState, currentOdds, favouriteHorseId,
  movement, placingOf, previousOdds, sortedStarters,
} from "./state.js";

const config = JSON.parse(document.getElementById("board-config").textContent);
const state = createState();
let sortBy = "number";
let historyLoad = 0; // which connection's history fetch is current

const runnersBody = document.querySelector("#runners tbody");
const connection = document.getElementById("connection");
const countdown = document.getElementById("countdown");
const chart = document.getElementById("market-chart");
const resultSection = document.getElementById("result");
const resultList = document.getElementById("result-list");
const announcer = document.getElementById("announcer");

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
    case "result_update":
      applyResult(state, message);
      render();
      announceResult();
      break;
    default:
      break; // subscribed, error: nothing to show
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

const ORDINALS = { 1: "1st", 2: "2nd", 3: "3rd" };
const ordinal = (n) => ORDINALS[n] || `${n}th`;
const runnerIndex = (horseId) => state.starters.findIndex((s) => s.horse_id === horseId);

function cell(tag, text, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null && text !== undefined) node.textContent = text;
  return node;
}

function render() {
  renderRunners();
  renderChart();
  renderResult();
  tickCountdown();
}

function renderRunners() {
  const favourite = favouriteHorseId(state);
  const rows = sortedStarters(state, sortBy).map((starter) => {
    const row = document.createElement("tr");
    row.dataset.horseId = starter.horse_id;
    const price = currentOdds(state, starter.horse_id);
    const move = movement(state, starter.horse_id);
    const placing = placingOf(state, starter.horse_id);
    if (placing && placing.placing === 1) row.classList.add("winner");
    if (starter.horse_id === favourite) row.classList.add("favourite");
    row.append(
      cell("td", starter.runner_number ?? "–", "num"),
      cell("td", starter.handicap_m !== null ? `${starter.handicap_m} m` : (starter.barrier ?? "–"), "num"),
    );
    const horse = cell("th", starter.horse_name ?? "–");
    horse.scope = "row";
    if (starter.horse_id === favourite) horse.append(" ", cell("span", "Fav", "fav-badge"));
    row.append(horse, cell("td", starter.driver_name ?? "–", "wide-only"), cell("td", starter.trainer_name ?? "–", "wide-only"));

    const odds = cell("td", null, `num odds ${move}`);
    if (price !== null) {
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
    const result = cell("td", placing ? (placing.finished ? ordinal(placing.placing) : "DNF") : "", "num placing");
    row.append(odds, trend, result);
    return row;
  });
  runnersBody.replaceChildren(...rows);
}

function renderChart() {
  const series = state.starters.map((starter, index) => ({
    label: String(starter.runner_number ?? starter.horse_name),
    colour: colourFor(index),
    points: state.history.get(starter.horse_id) || [],
  }));
  chart.replaceChildren(marketChart(series));
}

function starterOf(horseId) {
  return state.starters.find((s) => s.horse_id === horseId) || { horse_name: `horse ${horseId}`, runner_number: null };
}

function renderResult() {
  if (!state.result) {
    resultSection.hidden = true;
    return;
  }
  const items = state.result.results.map((entry) => {
    const starter = starterOf(entry.horse_id);
    const item = document.createElement("li");
    if (entry.finished && entry.placing === 1) item.className = "winner";
    if (!entry.finished) item.className = "dnf";
    item.append(
      cell("span", entry.finished ? String(entry.placing) : "DNF", "place"), " ",
      cell("span", `#${starter.runner_number ?? "–"}`, "no"), ` ${starter.horse_name}`,
    );
    if (!entry.finished) item.append(" – did not finish");
    return item;
  });
  resultList.replaceChildren(...items);
  resultSection.hidden = false;
}

function announceResult() {
  const finishers = state.result.results.filter((r) => r.finished).slice(0, 3);
  const words = finishers.map((r) => `${ordinal(r.placing)} number ${starterOf(r.horse_id).runner_number ?? ""} ${starterOf(r.horse_id).horse_name}`);
  announcer.textContent = `Result: ${words.join(", ")}.`;
}

function renderConditions() {
  for (const node of document.querySelectorAll("[data-field]")) {
    const value = state.race[node.dataset.field];
    if (node.dataset.field === "distance_m") node.textContent = `${value} m`;
    else if (node.dataset.field === "race_datetime") {
      if (value) node.setAttribute("datetime", value);
    } else node.textContent = value ? value[0].toUpperCase() + value.slice(1) : "–";
  }
}

// --- Connection, countdown, sorting ----------------------------------------------------------

const CONNECTION_LABELS = {
  connecting: () => "Connecting…",
  live: () => "Live",
  reconnecting: ({ delayMs }) => `Connection lost – retrying in ${Math.max(1, Math.round(delayMs / 1000))} s`,
  gone: ({ reason }) => reason,
};

function onStatus(status) {
  connection.dataset.state = status.state;
  connection.querySelector(".label").textContent = CONNECTION_LABELS[status.state](status);
}

function tickCountdown() {
  const start = state.race?.race_datetime ?? document.querySelector("time[data-field=race_datetime]")?.getAttribute("datetime");
  if (state.result) {
    countdown.textContent = "· result declared";
    return;
  }
  if (!start) return;
  const seconds = Math.round((Date.parse(start) - Date.now()) / 1000);
  const span = Math.abs(seconds);
  const days = Math.floor(span / 86400);
  const text = days > 0
    ? `${days} d ${Math.floor((span % 86400) / 3600)} h`
    : `${Math.floor(span / 3600) ? `${Math.floor(span / 3600)} h ` : ""}${Math.floor((span % 3600) / 60)} m ${String(span % 60).padStart(2, "0")} s`;
  countdown.textContent = seconds >= 0 ? `· starts in ${text}` : `· started ${text} ago`;
}

for (const button of document.querySelectorAll("[data-sort]")) {
  button.addEventListener("click", () => {
    sortBy = button.dataset.sort;
    for (const other of document.querySelectorAll("[data-sort]")) other.setAttribute("aria-pressed", String(other === button));
    renderRunners();
  });
}

const scheme = window.location.protocol === "https:" ? "wss" : "ws";
new RaceSocket({ url: `${scheme}://${window.location.host}${config.socketPath}`, raceId: config.raceId, onMessage, onStatus }).start();
tickCountdown();
setInterval(tickCountdown, 1000);
