// mgc-edge live view: the 10-second timelines of smoothed labels and their legend, one colour per class. The
// axis is this browser's clock, so that the timeline of a source that stopped moves on and empties.
"use strict";

const WINDOW_S = 10; // seconds of smoothed labels on the timeline
const GAP_MS = 1000; // a pause this long between two labels leaves the timeline empty (the source was away)

// One stable colour per class: its index in the model's label list, spread by the golden angle.
const colourCache = new Map();
function colour(label) {
  if (!colourCache.has(label)) {
    let index = labels.indexOf(label);
    if (index < 0) index = [...String(label)].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7);
    colourCache.set(label, `hsl(${(150 + index * 137.508) % 360}, 60%, 58%)`);
  }
  return colourCache.get(label);
}

function renderTimeline(canvas, history, legend) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  // The axis is this browser's clock, so that the timeline of a source that stopped moves on and empties.
  const end = performance.now();
  const x = (at) => ((at - (end - WINDOW_S * 1000)) / (WINDOW_S * 1000)) * width;
  for (let i = 0; i < history.length; i++) {
    const h = history[i];
    const next = i + 1 < history.length ? history[i + 1].at : Math.min(end, h.at + GAP_MS);
    if (next - h.at > GAP_MS) continue; // a gap (reconnecting, stale): leave it empty
    ctx.fillStyle = colour(h.label);
    ctx.fillRect(Math.floor(x(h.at)), 0, Math.ceil(x(next) - x(h.at)) + 1, height);
  }
  // Seconds ticks, newest on the right.
  ctx.fillStyle = "rgba(13, 17, 23, 0.55)";
  for (let s = 1; s < WINDOW_S; s++) ctx.fillRect(Math.round(width - (s / WINDOW_S) * width), 0, ratio, height);
  if (legend) renderLegend(history, legend);
}

function renderLegend(history, legend) {
  const seen = new Map(); // label -> name, most recent first
  for (let i = history.length - 1; i >= 0 && seen.size < 8; i--) {
    if (!seen.has(history[i].label)) seen.set(history[i].label, history[i].name);
  }
  const key = [...seen.keys()].join("|");
  if (legend.dataset.key !== key) {
    legend.dataset.key = key;
    legend.replaceChildren(...[...seen].map(([label, name]) => {
      const span = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour(label);
      span.append(swatch, name && name !== label ? `${label} · ${name}` : `${label}`);
      return span;
    }));
  }
}
