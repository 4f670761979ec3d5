// mgc-edge fleet view: every box publishing under one prefix, and each box's cameras, from /api/status polled
// once a second. Every text goes in through textContent (a box's messages are not trusted as markup), and a
// tile links to a box's own live view only when its status gives an http(s) address.
"use strict";

const POLL_MS = 1000;
const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const pct = (p) => (typeof p === "number" ? `${(100 * p).toFixed(0)}%` : "—");
const fmt = (v, d = 1) => (typeof v === "number" && isFinite(v) ? v.toFixed(d) : "—");
const ago = (s) => (typeof s === "number" ? (s < 1 ? "now" : `${fmt(s, 0)} s ago`) : "—");

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function sourceTile(box, s) {
  const tile = el("div", "tile");
  tile.dataset.box = box.box;
  tile.dataset.source = String(s.index);
  const head = el("div", "tile-head");
  const name = el("span", "tile-name");
  name.append(el("span", "idx", `#${s.index} `), document.createTextNode(s.name || "source"));
  name.title = s.name || "";
  const state = s.state || "—";
  head.append(name, el("span", `state state-${state}`, state));
  const label = s.label || {};
  const now = el("div", "tile-label");
  now.append(el("span", "tile-now", label.name !== undefined ? String(label.name) : "—"));
  now.append(el("span", "tile-prob mono", pct(label.prob)));
  now.dataset.label = label.label !== undefined ? String(label.label) : "";
  const fps = s.fps || {};
  const figures = el("div", "tile-figures muted mono", `${fmt(fps.inference)} fps · ${ago(s.last_seen_s)}`);
  tile.append(head, now, figures);
  if (s.message && state !== "live") tile.append(el("div", "source-message muted", s.message));
  return tile;
}

function boxCard(box) {
  const card = el("section", "card box");
  card.dataset.box = box.box;
  const head = el("div", "box-head");
  head.append(el("span", "box-name", box.box), el("span", `state state-${box.state}`, box.state));
  if (typeof box.live === "string" && /^https?:\/\//.test(box.live)) {
    const link = el("a", "chip", "live view");
    link.href = box.live;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    head.append(link);
  }
  const p = box.publish || {};
  const meta = el(
    "div",
    "box-meta muted mono",
    `${box.model || "model —"} · seen ${ago(box.last_seen_s)} · published ${p.published ?? "—"}, ` +
      `spooled ${p.spooled ?? "—"}, dropped ${p.dropped ?? "—"}`,
  );
  const tiles = el("div", "tiles");
  for (const s of box.sources || []) tiles.append(sourceTile(box, s));
  card.append(head, meta, tiles);
  return card;
}

function render(status) {
  $("broker").textContent = `${status.broker.url} · ${status.broker.connected ? "connected" : "reconnecting"}`;
  $("conn").className = `dot ${status.broker.connected ? "on" : "off"}`;
  $("count").textContent = `boxes ${status.boxes.length}`;
  $("empty").hidden = status.boxes.length > 0;
  $("boxes").replaceChildren(...status.boxes.map(boxCard));
}

async function poll() {
  try {
    const response = await fetch("api/status", {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: "no-store",
    });
    if (!response.ok) throw new Error(String(response.status));
    render(await response.json());
  } catch (err) {
    $("conn").className = "dot off";
    $("broker").textContent = "the fleet view does not answer";
  }
  setTimeout(poll, POLL_MS);
}

poll();
