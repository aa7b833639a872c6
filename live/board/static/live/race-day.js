// The race-day page, live over /ws/live: it subscribes to its days' (and any overdue meeting's)
// summaries, so that each race's status, favourite, winners and viewers change in place; the
// races next to go count down every second and leave when they close. Without this script the
// page is as the server rendered it.

import { showConnection } from "./connection.js";
import { formatCount, secondsUntil, startsIn, watching } from "./format.js";
import { LiveSocket } from "./socket.js";
import { localTime } from "./state.js";
import { applySummaries, createDay, isDelayed, nextToGo, winnersPieces } from "./summaries.js";

const config = JSON.parse(document.getElementById("day-config").textContent);
const day = createDay({ nextToGo: config.nextToGo, delayed: config.delayed, rows: config.nextToGoRows });
const connection = document.getElementById("connection");
const nextTable = document.getElementById("next-to-go");
const nextNone = document.getElementById("next-to-go-none");
const statusLabel = (status) => config.statusLabels?.[status] ?? status;

// Viewer counts come only over the socket: their columns show from here on.
document.documentElement.classList.add("live");

// --- Drawing ---------------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// Give a node these children, unless it has them already (as the server rendered them, or as
// the last summary left them): a summary changes only what changed, nothing under a reader's eyes.
function show(node, nodes) {
  if (!node) return;
  const wanted = node.cloneNode(false);
  wanted.append(...nodes);
  wanted.normalize();
  if (!wanted.isEqualNode(node)) node.replaceChildren(...wanted.childNodes);
}

function showText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

// As live/board/templates/live/favourite.html draws it: the badge where no heading says Favourite.
function favouriteNodes(favourite, { badge }) {
  if (!favourite) return badge ? [] : ["–"];
  const nodes = badge ? [element("span", "fav-badge", "Fav"), " "] : [];
  if (favourite.runner_number !== null && favourite.runner_number !== undefined) {
    nodes.push(element("span", "no", `#${favourite.runner_number}`), " ");
  }
  nodes.push(`${favourite.horse_name} `, element("span", "price", favourite.odds.toFixed(2)));
  return nodes;
}

// A meeting's status cell: the status, Delayed beside a start put back, the winners once official.
function statusNodes(race) {
  const nodes = [element("span", `badge ${race.status}`, statusLabel(race.status))];
  if (isDelayed(day, race)) nodes.push(" ", element("span", "badge delayed", "Delayed"));
  const pieces = race.status === "official" ? winnersPieces(race.winners) : [];
  if (pieces.length) {
    const wonBy = element("span", "won-by");
    wonBy.append(element("span", "wide-only", " –"));
    wonBy.append(...pieces.map((piece) => (typeof piece === "string" ? piece : element("strong", null, piece.name))));
    nodes.push(wonBy);
  }
  return nodes;
}

function startTime(race) {
  const time = element("time", null, localTime(race.race_datetime));
  time.dateTime = race.race_datetime;
  return time;
}

// What every row of a race shows and a summary may change: its start, favourite and viewers.
function fillCommon(row, race, { separator = "" } = {}) {
  if (race.race_datetime) {
    show(row.querySelector("td.start"), [startTime(race)]);
    show(row.querySelector(".race-facts .start"), [startTime(race), separator]);
  }
  show(row.querySelector("td.favourite"), favouriteNodes(race.favourite, { badge: false }));
  show(row.querySelector(".race-fav"), favouriteNodes(race.favourite, { badge: true }));
  if (typeof race.viewers === "number") { // next to go's first rows come from the API, which does not count them
    showText(row.querySelector("td.viewers"), race.viewers > 0 ? formatCount(race.viewers) : "");
    // Kept to its line, and after the facts before it: "18:05 · 2200 m ·" then "3 watching".
    const words = watching(race.viewers).replace(" ", "\u00a0");
    showText(row.querySelector(".viewers-words"), race.viewers > 0 ? `\u00a0· ${words}` : "");
  }
}

function updateMeetingRows(race) {
  for (const row of document.querySelectorAll(`table.races tr[data-race-id="${race.id}"]`)) {
    if (row.className !== `status-${race.status}`) row.className = `status-${race.status}`;
    show(row.querySelector("td.race-status"), statusNodes(race));
    fillCommon(row, race, { separator: " · " });
  }
}

// A row of next to go, as live/board/templates/live/next_to_go_row.html draws it.
function nextRow(race) {
  const row = element("tr");
  row.dataset.raceId = race.id;
  const heading = element("th", "race");
  heading.scope = "row";
  const link = element("a", null, `${race.venue ?? race.meeting_id} R${race.race_number}`);
  link.href = `/races/${race.id}/`; // racing/urls.py's race-page
  const facts = element("span", "race-facts");
  facts.append(element("span", "start"));
  if (race.name) {
    const part = element("span", "name-part", " · ");
    part.append(element("span", "name", race.name));
    facts.append(part);
  }
  facts.append(element("span", "viewers-words phone-only live-only"));
  heading.append(link, " ", facts, " ", element("span", "race-fav phone-only"));
  row.append(
    heading,
    element("td", "favourite wide-only"),
    element("td", "race-status"),
    element("td", "num viewers wide-only live-only"),
    element("td", "num starts-in"),
  );
  return row;
}

function renderNextToGo() {
  if (!nextTable) return; // a day's page: next to go is about now, on today's
  const body = nextTable.tBodies[0];
  const shown = new Map([...body.rows].map((row) => [Number(row.dataset.raceId), row]));
  const rows = nextToGo(day).map((race) => {
    const row = shown.get(race.id) ?? nextRow(race);
    row.dataset.start = race.race_datetime;
    show(row.querySelector("td.race-status"), [element("span", `badge ${race.status}`, statusLabel(race.status))]);
    fillCommon(row, race);
    return row;
  });
  // Rows that stay are moved only if the order changed: a link keeps its focus.
  if (rows.length !== body.rows.length || rows.some((row, index) => body.rows[index] !== row)) body.replaceChildren(...rows);
  nextTable.hidden = rows.length === 0;
  nextNone.hidden = rows.length > 0;
  tick();
}

function tick() {
  if (!nextTable) return;
  const now = Date.now();
  for (const row of nextTable.tBodies[0].rows) {
    showText(row.querySelector("td.starts-in"), startsIn(secondsUntil(row.dataset.start, now)));
  }
}

// --- Messages --------------------------------------------------------------------------------

function onSummary(message) {
  for (const race of applySummaries(day, message)) updateMeetingRows(race);
  renderNextToGo();
}

const scheme = window.location.protocol === "https:" ? "wss" : "ws";
const live = new LiveSocket({
  url: `${scheme}://${window.location.host}/ws/live`,
  onSummary,
  onStatus: (status) => showConnection(connection, status),
});
for (const target of config.subscriptions) live.watch(target);
renderNextToGo();
setInterval(tick, 1000);
if (config.subscriptions.length) live.start(); // else no race to follow: no connection either
