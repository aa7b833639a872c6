// The board's words for times and counts, the same on every page (live/board/labels.py says
// them on the server, for the page as rendered).

const counts = new Intl.NumberFormat("en");

// 1234 -> "1,234".
export function formatCount(count) {
  return counts.format(count);
}

// A whole span of seconds to the second, as the race page counts down: "4 d 3 h",
// "1 h 29 m 05 s", "12 m 05 s".
export function timeSpan(seconds) {
  const span = Math.abs(seconds);
  const days = Math.floor(span / 86400);
  if (days > 0) return `${days} d ${Math.floor((span % 86400) / 3600)} h`;
  const hours = Math.floor(span / 3600);
  return `${hours ? `${hours} h ` : ""}${Math.floor((span % 3600) / 60)} m ${String(span % 60).padStart(2, "0")} s`;
}

// The time to a race's start in a list of races (next to go): to the second in its last hour,
// short enough for a phone's column. "Due" once the start has come and the race has not yet
// closed (live/board/labels.py's starts_in).
export function startsIn(seconds) {
  if (seconds <= 0) return "Due";
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const two = (n) => String(n).padStart(2, "0");
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${two(minutes)} m`;
  if (minutes) return `${minutes} m ${two(seconds % 60)} s`;
  return `${seconds} s`;
}

// Whole seconds from now to a start time ("2026-12-04T19:30:00+13:00"), floored as
// /api/next-to-go/'s seconds_to_start: 0 or more until the start, negative from the moment after.
export function secondsUntil(isoDateTime, nowMs) {
  return Math.floor((Date.parse(isoDateTime) - nowMs) / 1000);
}

// A race's viewers: "1,234 watching"; "" for none. On the race's own page the page is one of
// them, counted once a second from when it subscribed: "Just you watching" until another comes.
export function watching(count, { includesYou = false } = {}) {
  if (includesYou && count <= 1) return "Just you watching";
  return count > 0 ? `${formatCount(count)} watching` : "";
}
