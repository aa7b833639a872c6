// Hand-drawn SVG charts of win odds: a sparkline per runner and the whole market.
// Odds are drawn on a log scale (a move from 2 to 3 matters as much as 20 to 30), shorter
// prices lower down. Built with DOM calls only: names never pass through innerHTML.

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = [
  "#1b6ac9", "#d2461e", "#2a9d4b", "#8e44ad", "#c9a21b", "#17a2b8", "#e83e8c", "#6c757d",
  "#5d4037", "#00897b", "#3949ab", "#f57c00", "#7cb342", "#ad1457",
];

export function colourFor(index) {
  return PALETTE[index % PALETTE.length];
}

function element(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function scale(domainMin, domainMax, rangeMin, rangeMax) {
  const span = domainMax - domainMin || 1;
  return (value) => rangeMin + ((value - domainMin) / span) * (rangeMax - rangeMin);
}

export function sparkline(points, { width = 96, height = 24, colour = "currentColor" } = {}) {
  const svg = element("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "sparkline", "aria-hidden": "true" });
  if (points.length < 2) return svg;
  const logs = points.map((p) => Math.log(p.odds));
  const x = scale(points[0].at, points[points.length - 1].at, 2, width - 2);
  const y = scale(Math.min(...logs), Math.max(...logs), height - 3, 3);
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(logs[i]).toFixed(1)}`).join("");
  svg.append(element("path", { d: path, fill: "none", stroke: colour, "stroke-width": 1.5 }));
  const last = points.length - 1;
  svg.append(element("circle", { cx: x(points[last].at), cy: y(logs[last]), r: 2, fill: colour }));
  return svg;
}

// Before the first odds there is nothing to draw: a short box, not a tall empty one.
const EMPTY_HEIGHT = 120;
const ODDS_TICKS = [1.2, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500];

export function marketChart(series, { width = 720, height = 320 } = {}) {
  // series: [{ label, colour, points: [{ at, odds }] }]
  const margin = { top: 12, right: 34, bottom: 26, left: 40 };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) height = Math.min(height, EMPTY_HEIGHT);
  const svg = element("svg", { viewBox: `0 0 ${width} ${height}`, class: "market-chart", preserveAspectRatio: "xMidYMid meet" });
  if (all.length === 0) {
    svg.append(element("text", { x: width / 2, y: height / 2 + 5, "text-anchor": "middle", class: "empty" }, "Waiting for the market to open…"));
    return svg;
  }
  const times = all.map((p) => p.at);
  const logs = all.map((p) => Math.log(p.odds));
  const start = Math.min(...times);
  const end = Math.max(...times, start + 1000);
  const x = scale(start, end, margin.left, width - margin.right);
  const y = scale(Math.log(Math.min(...all.map((p) => p.odds)) * 0.9), Math.log(Math.max(...all.map((p) => p.odds)) * 1.1), height - margin.bottom, margin.top);
  const axis = element("g", { class: "axis" });
  const low = Math.min(...logs);
  const high = Math.max(...logs);
  for (const tick of ODDS_TICKS) {
    if (Math.log(tick) < low - 0.2 || Math.log(tick) > high + 0.2) continue;
    const ty = y(Math.log(tick));
    axis.append(element("line", { x1: margin.left, x2: width - margin.right, y1: ty, y2: ty, class: "grid" }));
    axis.append(element("text", { x: margin.left - 6, y: ty + 4, "text-anchor": "end" }, String(tick)));
  }
  const seconds = Math.round((end - start) / 1000);
  axis.append(element("text", { x: margin.left, y: height - 6 }, "open"));
  axis.append(element("text", { x: width - margin.right, y: height - 6, "text-anchor": "end" }, `+${seconds} s`));
  svg.append(axis);
  for (const { label, colour, points } of series) {
    if (points.length === 0) continue;
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(Math.log(p.odds)).toFixed(1)}`).join("");
    const line = element("g", { class: "runner-line" });
    line.append(element("path", { d, fill: "none", stroke: colour, "stroke-width": 2 }));
    const last = points[points.length - 1];
    line.append(element("circle", { cx: x(last.at), cy: y(Math.log(last.odds)), r: 3, fill: colour }));
    line.append(element("text", { x: x(last.at) + 6, y: y(Math.log(last.odds)) + 4, fill: colour, class: "line-label" }, label));
    svg.append(line);
  }
  return svg;
}
