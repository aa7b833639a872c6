// The page's link to the server, as both pages show it: Connecting…, Live updates, Offline –
// retrying in N s. Hidden until the script runs: without it there is no live link.

const LABELS = {
  connecting: () => "Connecting…",
  live: () => "Live updates",
  reconnecting: ({ delayMs }) => `Offline – retrying in ${Math.max(1, Math.round(delayMs / 1000))} s`,
  gone: ({ reason }) => reason || "Not found",
};

export function showConnection(node, status) {
  node.hidden = false;
  node.dataset.state = status.state;
  node.querySelector(".label").textContent = (LABELS[status.state] ?? (() => status.state))(status);
}
