// mgc-edge live view: MJPEG frames on the left, the predictions (Server-Sent Events) on the right. With several
// sources, the left is a grid of tiles (frame, smoothed label, timeline, figures), and the right shows the
// selected tile in full. Events may arrive faster than the screen refreshes; they are recorded as they come and
// drawn once per animation frame. The token (if any) travels as ?token= because <img> and EventSource cannot
// set headers. Frames come with the event they were drawn for (X-Event), so that the caption under a picture
// says what the picture shows; a source that is down shows it: no label, greyed rates, its state and since when.
"use strict";

const WINDOW_S = 10; // seconds of smoothed labels on the timeline
const STATUS_EVERY_MS = 2000;
const STATES = { live: "live", stale: "stale", reconnecting: "reconnecting", ended: "ended", failed: "failed" };
// Tiles load still frames (one short request each), not one MJPEG stream per source: a browser opens about 6
// connections per host, and 16 tiles must not wait for each other. The interval grows with the tiles.
const TILE_MS = (n) => Math.max(200, 50 * n);
const DOWN = new Set(["stale", "reconnecting", "ended", "failed", "offline"]);
const GAP_MS = 1000; // a pause this long between two labels leaves the timeline empty (the source was away)
// One id for this page's streams, so that the server counts the page once in `viewers`.
const viewerId = Math.random().toString(36).slice(2, 12) || "page";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path, extra) => {
  const params = new URLSearchParams(extra || {});
  if (token) params.set("token", token);
  const query = params.toString();
  return query ? `${path}?${query}` : path;
};

const $ = (id) => document.getElementById(id);
const view = {
  conn: $("conn"), model: $("model"), provider: $("provider"),
  video: $("video"), placeholder: $("placeholder"), banner: $("banner"),
  state: $("state"), frameinfo: $("frameinfo"),
  nowName: $("now-name"), nowLabel: $("now-label"), nowProb: $("now-prob"), nowBar: $("now-bar"),
  nowCard: document.querySelector(".now"), nowState: $("now-state"), nowSince: $("now-since"),
  nowMessage: $("now-message"), statsCard: $("stats-card"),
  topk: $("topk"), timeline: $("timeline"), legend: $("legend"), axisStart: $("axis-start"),
  fpsCapture: $("fps-capture"), fpsInference: $("fps-inference"), latency: $("latency"),
  stages: $("stages"), counters: $("counters"),
  videoCard: document.querySelector(".video-card"), gridCard: $("grid-card"), tiles: $("tiles"),
  gridInfo: $("grid-info"), gridBanner: $("grid-banner"), selected: $("selected"),
};

let labels = [];
let latest = null; // newest frame event (of the selected source)
let history = []; // [{at, label, name}] of smoothed labels, oldest first (of the selected source)
const feeds = new Map(); // source index -> {index, name, latest, history, state, stateAt, status, seen, tile}
let selected = 0;
let multi = false; // several sources: the grid of tiles
let runState = null; // a state event of the whole run (its end)
let dirty = false;
let events = 0;
let connected = false;
let clockOffset = 0; // the box's clock minus this browser's (ms), from /api/status: `since` is the box's time

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

const fmt = (value, digits = 1) => (typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "—");
const pct = (p) => (typeof p === "number" ? `${(100 * p).toFixed(0)}%` : "—");
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// "since 17:02:11 (2 min 5 s)": when a state began, in this browser's clock, and how long ago.
function sinceText(since) {
  if (typeof since !== "number") return "";
  const began = since * 1000 - clockOffset;
  return `since ${clock(began)} (${duration(Date.now() - began)})`;
}

// What a source is doing now: the newest of its state event and frame event says the state (events come in
// order); the status poll, when it agrees, brings the newest message (try n, next in s) and since when.
function current(f) {
  if (!f) return { state: connected ? "wait" : "offline", message: "", since: null };
  let state = "wait", message = "", at = null;
  const st = f.state, e = f.latest;
  if (st && (!e || st.seq > e.seq)) [state, message, at] = [st.state, st.message || "", f.stateAt];
  else if (e) [state, at] = [e.state || "live", f.latestAt];
  const polled = f.status, seen = f.seen;
  let since = null;
  if (polled && polled.state === state) {
    if (typeof polled.state_since === "number") since = polled.state_since; // the loop's own
    if (f.statusAt > (at || 0) && polled.message) message = polled.message; // newer than the event's
  }
  if (since === null && seen && seen.state === state && typeof seen.state_since === "number") since = seen.state_since;
  if (since === null && f.changedAt) since = (f.changedAt + clockOffset) / 1000; // when this page saw it change
  return { state: STATES[state] || state, message, since };
}

// Note when a source's state changes as events come (the last resort for "since when").
function changing(f, update) {
  const before = current(f).state;
  update();
  if (current(f).state !== before) f.changedAt = Date.now();
}

// The selected source's state; a state of the whole run (without a source) counts once it is the newest.
function selectedState(f) {
  const newest = Math.max((f && f.latest && f.latest.seq) || 0, (f && f.state && f.state.seq) || 0);
  if (runState && runState.seq > newest) {
    return { state: STATES[runState.state] || runState.state, message: runState.message || "", since: runState.since };
  }
  return current(f);
}

function showState(name, message, since) {
  const state = STATES[name] || name || "wait";
  view.state.textContent = state;
  view.state.className = `state state-${state}`;
  const alert = state !== "live" && state !== "wait";
  view.banner.hidden = !alert;
  if (alert) {
    const titles = { stale: "Stale: no new frame", reconnecting: "Reconnecting to the source…",
      ended: "The source has ended", failed: "The source was lost",
      offline: "Connection to the edge box lost, retrying…" };
    const when = state === "offline" ? "" : sinceText(since);
    const head = when ? `${titles[state] || state} ${when}` : titles[state] || state;
    view.banner.textContent = message ? `${head}: ${message}` : head;
    view.banner.classList.toggle("bad", state === "ended" || state === "offline" || state === "failed");
  }
  view.videoCard.classList.toggle("down", DOWN.has(state));
}

// The selected source's state in its panel: a chip, since when, and the newest message.
function showPanelState(now) {
  view.nowState.textContent = now.state;
  view.nowState.className = `state state-${now.state}`;
  view.nowSince.textContent = now.state === "offline" || now.state === "wait" ? "" : sinceText(now.since);
  view.nowMessage.textContent = now.message || "";
  view.nowMessage.hidden = !now.message;
  const down = DOWN.has(now.state);
  view.nowCard.classList.toggle("down", down);
  view.statsCard.classList.toggle("down", down);
  return down;
}

function render() {
  dirty = false;
  document.body.dataset.events = String(events);
  const f = feeds.get(selected);
  let now = selectedState(f);
  if (!connected && now.state !== "ended") now = { state: "offline", message: "", since: null };
  if (!multi) showState(now.state, now.message, now.since);
  const down = showPanelState(now);
  if (!multi) view.frameinfo.textContent = captionText(videoCaption, down);
  if (multi) renderTiles();
  renderTimeline(view.timeline, history, view.legend);
  if (!latest) return;
  const e = latest;

  // A source that is down has no label now: its last one would say something that is no longer true.
  const s = down ? {} : e.smoothed || {};
  view.nowName.textContent = s.name ?? s.label ?? "—";
  view.nowLabel.textContent = `label ${s.label ?? "—"}`;
  view.nowProb.textContent = pct(s.prob);
  view.nowBar.style.width = `${Math.max(0, Math.min(1, s.prob || 0)) * 100}%`;
  view.nowBar.style.background = colour(s.label);
  document.title = `${down ? now.state : s.name ?? s.label ?? "live"} · mgc-edge`;

  renderTop(down ? [] : e.top || []);
  // Rates: the frame's own while live; while down, the status poll's (the loop's rates now, 0 when away).
  const fps = down ? downRates(f, now.state) : e.fps || {};
  view.fpsCapture.textContent = fmt(fps.capture);
  view.fpsInference.textContent = fmt(fps.inference);
  const lat = e.latency_ms || {};
  const total = lat.total ?? lat.end_to_end ?? Object.values(lat).reduce((a, v) => a + (+v || 0), 0);
  view.latency.textContent = fmt(total);
  view.stages.textContent = Object.entries(lat)
    .filter(([k]) => k !== "total" && k !== "end_to_end")
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(" · ");
}

function renderTop(top) {
  while (view.topk.children.length < top.length) {
    const li = document.createElement("li");
    li.innerHTML = '<span class="name"><span class="id"></span><span class="text"></span></span>' +
      '<span class="pct mono"></span><span class="track"><span class="fill"></span></span>';
    li.querySelector(".fill").style.display = "block";
    view.topk.appendChild(li);
  }
  while (view.topk.children.length > top.length) view.topk.lastChild.remove();
  top.forEach((item, i) => {
    const li = view.topk.children[i];
    li.querySelector(".id").textContent = item.label ?? "";
    li.querySelector(".text").textContent = item.name ?? "";
    li.querySelector(".pct").textContent = pct(item.prob);
    const fill = li.querySelector(".fill");
    fill.style.width = `${Math.max(0, Math.min(1, item.prob || 0)) * 100}%`;
    fill.style.background = colour(item.label);
  });
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

function schedule() {
  if (!dirty) {
    dirty = true;
    requestAnimationFrame(render);
  }
}

function feed(index, name, short) {
  let f = feeds.get(index);
  if (!f) {
    f = { index, name: name || `source ${index}`, latest: null, latestAt: null, history: [], state: null,
      stateAt: null, changedAt: null, status: null, statusAt: 0, seen: null, shown: null, short: null, tile: null };
    feeds.set(index, f);
    if (multi) addTile(f);
  }
  if (name) f.name = name;
  if (short) f.short = short;
  return f;
}

function record(f, e) {
  const s = e.smoothed;
  const at = performance.now();
  if (s) {
    const h = f.history;
    h.push({ at, label: s.label, name: s.name });
    const from = at - (WINDOW_S + 1) * 1000;
    let drop = 0;
    while (drop < h.length && h[drop].at < from) drop++;
    if (drop) h.splice(0, drop);
  }
  changing(f, () => {
    f.latest = e;
    f.latestAt = Date.now();
  });
}

function onFrame(message) {
  const e = JSON.parse(message.data);
  e.seq = +message.lastEventId || 0;
  events++;
  const src = e.source || {};
  const f = feed(src.index ?? 0, src.name, src.short_name);
  record(f, e);
  if (f.index > 0 && !multi) enableMulti();
  if (f.index === selected) {
    latest = e;
    history = f.history;
  }
  schedule();
}

function onState(message) {
  const e = JSON.parse(message.data);
  e.seq = +message.lastEventId || 0;
  if (e.source) {
    const f = feed(e.source.index, e.source.name, e.source.short_name);
    changing(f, () => {
      f.state = e;
      f.stateAt = Date.now();
    });
  } else {
    e.since = (Date.now() + clockOffset) / 1000;
    runState = e; // the end of the whole run
  }
  schedule();
}

// -- several sources ----------------------------------------------------------------------------------------

function enableMulti() {
  if (multi) return;
  multi = true;
  view.videoCard.hidden = true;
  if (videoAbort) videoAbort.abort(); // the one MJPEG stream gives its connection to the tiles
  view.video.removeAttribute("src");
  view.gridCard.hidden = false;
  view.selected.hidden = false;
  for (const f of [...feeds.values()].sort((a, b) => a.index - b.index)) addTile(f);
  select(selected);
}

function addTile(f) {
  if (f.tile) return;
  const root = document.createElement("div");
  root.className = "tile";
  root.dataset.index = String(f.index);
  root.innerHTML = '<div class="tile-head"><span class="tile-name"><span class="idx"></span><span class="text"></span>' +
    '</span><span class="state state-wait">wait</span></div><div class="tile-frame"><img alt="">' +
    '<div class="placeholder muted">waiting…</div><div class="tile-message" hidden></div></div>' +
    '<div class="tile-label"><span class="tile-now">—</span><span class="tile-prob mono">—</span></div>' +
    '<div class="meter"><div class="meter-fill"></div></div><canvas class="timeline" width="300" height="18"></canvas>' +
    '<div class="tile-figures mono"></div>';
  const q = (sel) => root.querySelector(sel);
  f.tile = { root, img: q("img"), frame: q(".tile-frame"), idx: q(".idx"), name: q(".text"), state: q(".state"),
    message: q(".tile-message"), now: q(".tile-now"), prob: q(".tile-prob"), bar: q(".meter-fill"),
    timeline: q("canvas"), figures: q(".tile-figures") };
  root.addEventListener("click", () => select(f.index));
  const after = [...view.tiles.children].find((el) => +el.dataset.index > f.index);
  view.tiles.insertBefore(root, after || null);
  // A square-ish grid: 2 columns for 2-4 sources, 3 for 5-9, 4 for 10-16, ...
  view.tiles.style.setProperty("--columns", String(Math.max(2, Math.ceil(Math.sqrt(feeds.size)))));
  loadTile(f);
}

// The event a picture was drawn for, from its X-Event header (null without one).
function caption(headers) {
  try {
    return JSON.parse(headers.get("X-Event") || "null");
  } catch (err) {
    return null;
  }
}

// Show JPEG bytes in an <img> through a blob URL (freed once the next one is shown).
function showImage(img, blob) {
  const url = URL.createObjectURL(blob);
  img.onload = () => {
    if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
    img.dataset.url = url;
  };
  img.onerror = () => URL.revokeObjectURL(url);
  img.src = url;
}

// A tile's picture: one still frame at a time, with the event it was drawn for (its caption).
async function loadTile(f) {
  const started = performance.now();
  let wait = 1000; // no frame yet, or the server is gone: ask again shortly
  try {
    const response = await fetch(withToken("frame.jpg", { source: f.index }), { cache: "no-store" });
    if (response.ok) {
      const shown = caption(response.headers);
      showImage(f.tile.img, await response.blob());
      f.shown = shown;
      f.tile.frame.classList.add("has-frame");
      f.tile.frame.querySelector(".placeholder").hidden = true;
      wait = Math.max(0, TILE_MS(feeds.size) - (performance.now() - started));
      schedule();
    } else if (response.status === 404) {
      wait = 5000; // no such source (any more)
    }
  } catch (err) {
    // the server is gone or restarting
  }
  setTimeout(() => loadTile(f), wait);
}

function select(index) {
  selected = index;
  const f = feeds.get(index);
  latest = f ? f.latest : null;
  history = f ? f.history : [];
  view.legend.dataset.key = "";
  for (const g of feeds.values()) if (g.tile) g.tile.root.classList.toggle("selected", g.index === index);
  if (f) view.selected.textContent = `· source ${f.index} · ${f.name}`;
  schedule();
}

function tileState(f) {
  if (runState && runState.state === "ended" && !connected) return { state: "ended", message: runState.message, since: null };
  return current(f);
}

function renderTiles() {
  const ended = runState && runState.state === "ended";
  view.gridBanner.hidden = connected && !ended;
  if (!view.gridBanner.hidden) {
    view.gridBanner.textContent = ended ? `The run has ended: ${runState.message}` : "Connection to the edge box lost, retrying…";
  }
  view.gridInfo.textContent = `${feeds.size} sources · click one for its details`;
  for (const f of feeds.values()) {
    const t = f.tile;
    if (!t) continue;
    t.idx.textContent = String(f.index);
    t.name.textContent = f.short || f.name; // the short unique name where the loop gives one
    t.name.title = f.name;
    const now = tileState(f);
    const down = DOWN.has(now.state);
    t.root.classList.toggle("down", down);
    t.state.textContent = now.state;
    t.state.className = `state state-${now.state}`;
    const lines = down ? [sinceText(now.since), now.message].filter(Boolean) : [];
    t.message.hidden = !lines.length;
    t.message.textContent = lines.join(" · ");
    t.message.classList.toggle("bad", now.state === "failed" || now.state === "ended");
    // The caption under the picture: the event that picture was drawn for; none while the source is down.
    const s = down ? {} : ((f.shown || {}).smoothed || {});
    t.now.textContent = s.name ?? s.label ?? "—";
    t.prob.textContent = pct(s.prob);
    t.bar.style.width = `${Math.max(0, Math.min(1, s.prob || 0)) * 100}%`;
    t.bar.style.background = colour(s.label);
    renderTimeline(t.timeline, f.history, null);
    t.figures.textContent = tileFigures(f, down);
  }
}

// The rates of a source that is down: the status poll's once it says the same state (until then, none: the
// last frame's would claim a rate it no longer has).
function downRates(f, state) {
  const st = (f && f.status) || {};
  return st.state === state && st.fps ? st.fps : {};
}

// A tile's figures: rates and latency of its newest frame (while down: the status poll's rates, greyed),
// counters from the status poll.
function tileFigures(f, down) {
  const st = f.status || {};
  const fps = down ? downRates(f, tileState(f).state) : (f.latest || {}).fps || {};
  const frames = st.frames || {};
  const e2e = ((st.latency_ms || {}).end_to_end || {}).p95;
  const age = (f.seen || {}).last_frame_age_s;
  const items = [
    ["capture", fps.capture !== undefined ? `${fmt(fps.capture)} fps` : undefined],
    ["classified", fps.inference !== undefined ? `${fmt(fps.inference)}/s` : undefined],
    ["e2e p95", typeof e2e === "number" ? `${e2e.toFixed(0)} ms` : undefined],
    ["dropped", frames.dropped], ["reconnects", st.reconnects],
    ["last frame", down && typeof age === "number" ? `${duration(age * 1000)} ago` : undefined],
  ];
  return items.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${v}`).join(" · ");
}

function connectEvents() {
  const source = new EventSource(withToken("events", { viewer: viewerId }));
  source.addEventListener("frame", onFrame);
  source.addEventListener("state", onState);
  source.onopen = () => {
    connected = true;
    view.conn.className = "dot on";
    schedule();
  };
  source.onerror = () => {
    connected = false;
    view.conn.className = "dot off";
    schedule(); // EventSource retries by itself (the server asks for 2 s)
  };
}

// The MJPEG stream, read here rather than by <img>: each part carries the event its frame was drawn for
// (X-Event), so the caption under the picture is that frame's.
let videoAbort = null;
let videoCaption = null; // the event of the frame the video shows (its X-Event)
const CRLF2 = [13, 10, 13, 10];

function indexOf(bytes, pattern, from) {
  outer: for (let i = from; i <= bytes.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (bytes[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

// The parts complete in `bytes` ([{jpeg, head}]) and where the rest begins.
function parts(bytes) {
  const found = [];
  let at = 0;
  for (;;) {
    const end = indexOf(bytes, CRLF2, at);
    if (end < 0) break;
    const head = new TextDecoder().decode(bytes.subarray(at, end));
    const length = /content-length:\s*(\d+)/i.exec(head);
    if (!length) { at = end + 4; continue; }
    if (end + 4 + +length[1] > bytes.length) break;
    found.push({ jpeg: bytes.slice(end + 4, end + 4 + +length[1]), head });
    at = end + 4 + +length[1];
  }
  return { found, rest: bytes.subarray(at) };
}

function showVideo(jpeg, head) {
  const line = /^x-event:\s*(.+)$/im.exec(head);
  let e = null;
  try { e = line ? JSON.parse(line[1]) : null; } catch (err) { e = null; }
  showImage(view.video, new Blob([jpeg], { type: "image/jpeg" }));
  view.placeholder.hidden = true;
  view.video.parentElement.classList.add("has-frame");
  videoCaption = e;
  schedule();
}

// The caption under the video: the frame shown and its label; while the source is down, only which frame it
// was (its label is no longer true).
function captionText(e, down) {
  if (!e) return "frame — · t —";
  const s = e.smoothed || {};
  const where = `frame ${e.frame ?? "—"} · t ${fmt(e.t, 2)} s`;
  return down ? `last ${where}` : `${where} · ${s.name ?? s.label ?? "—"} ${pct(s.prob)}`;
}

async function connectVideo() {
  if (multi) return;
  const controller = new AbortController();
  videoAbort = controller;
  try {
    const url = withToken("stream.mjpg", { viewer: viewerId });
    const response = await fetch(url, { cache: "no-store", signal: controller.signal });
    if (!response.ok || !response.body) throw new Error(`stream.mjpg ${response.status}`);
    const reader = response.body.getReader();
    let pending = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(pending.length + value.length);
      joined.set(pending);
      joined.set(value, pending.length);
      const { found, rest } = parts(joined);
      pending = rest;
      if (found.length) showVideo(found[found.length - 1].jpeg, found[found.length - 1].head);
    }
  } catch (err) {
    // The stream ended (server stopped, too many viewers, network), or the tiles took over.
  }
  // Try again shortly, unless the tiles took over.
  if (!multi && !controller.signal.aborted) setTimeout(connectVideo, 2000);
}

function describeModel(model, source) {
  labels = model.labels || [];
  colourCache.clear();
  view.legend.dataset.key = ""; // redraw the legend in the model's colours
  const size = Array.isArray(model.input_size) ? model.input_size.join("×") : null;
  view.model.textContent = [model.model, model.arch, model.precision, size && `${size} input`,
    labels.length && `${labels.length} classes`, source && (/^\d+ sources$/.test(source) ? source : `source ${source}`),
  ].filter(Boolean).join(" · ");
  const provider = String(model.provider || "").replace(/ExecutionProvider$/, "");
  view.provider.textContent = provider ? `provider ${provider}` : "provider —";
  view.provider.classList.toggle("gpu", /cuda|tensorrt/i.test(provider));
}

// The loop's counters worth a glance (from GET /api/status; all of them are in the JSON itself).
function counters(status) {
  let loop = status.loop || {};
  if (multi && Array.isArray(loop.sources)) loop = loop.sources.find((s) => s.index === selected) || {};
  const frames = loop.frames || {};
  const e2e = (loop.latency_ms || {}).end_to_end;
  const items = [
    ["read", frames.read], ["classified", frames.classified], ["dropped", frames.dropped],
    ["skipped", frames.skipped], ["reconnects", loop.reconnects],
    ["end-to-end p95", e2e && typeof e2e.p95 === "number" ? `${e2e.p95.toFixed(1)} ms` : undefined],
    ["viewers", status.server ? status.server.viewers : undefined],
  ];
  return items.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${v}`).join(" · ");
}

async function pollStatus(first) {
  try {
    const response = await fetch(withToken("api/status"), { cache: "no-store" });
    if (response.ok) {
      const status = await response.json();
      if (first) describeModel(status.model || {}, (status.loop || {}).source);
      const server = status.server || {};
      if (typeof server.time === "number") clockOffset = server.time * 1000 - Date.now();
      for (const seen of Array.isArray(server.sources) ? server.sources : []) {
        if (feeds.has(seen.index)) feeds.get(seen.index).seen = seen;
      }
      const sources = (status.loop || {}).sources;
      if (Array.isArray(sources)) {
        for (const entry of sources) {
          const f = feed(entry.index, entry.name, entry.short_name);
          Object.assign(f, { status: entry, statusAt: Date.now() });
          if (!f.seen) f.seen = (server.sources || []).find((s) => s.index === entry.index) || null;
        }
        if (sources.length > 1) enableMulti();
      }
      schedule();
      view.counters.textContent = counters(status);
      first = false;
    }
  } catch (err) {
    // The server is gone or restarting; the event stream shows "offline" meanwhile.
  }
  setTimeout(() => pollStatus(first), STATUS_EVERY_MS);
}

view.axisStart.textContent = String(WINDOW_S);
showState("wait");
pollStatus(true);
connectEvents();
connectVideo();
setInterval(schedule, 500); // timelines move on and "since" counts up even when no event comes
