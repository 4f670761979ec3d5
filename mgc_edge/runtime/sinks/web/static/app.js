// mgc-edge live view: MJPEG frames on the left, the predictions (Server-Sent Events) on the right. With several
// sources, the left is a grid of tiles (frame, smoothed label, timeline, figures), and the right shows the
// selected tile in full. Events may arrive faster than the screen refreshes; they are recorded as they come and
// drawn once per animation frame. The token (if any) travels as ?token= because <img> and EventSource cannot
// set headers.
"use strict";

const WINDOW_S = 10; // seconds of smoothed labels on the timeline
const STATUS_EVERY_MS = 2000;
const STATES = { live: "live", stale: "stale", reconnecting: "reconnecting", ended: "ended", failed: "failed" };
// Tiles load still frames (one short request each), not one MJPEG stream per source: a browser opens about 6
// connections per host, and 16 tiles must not wait for each other. The interval grows with the tiles.
const TILE_MS = (n) => Math.max(200, 50 * n);

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
  topk: $("topk"), timeline: $("timeline"), legend: $("legend"), axisStart: $("axis-start"),
  fpsCapture: $("fps-capture"), fpsInference: $("fps-inference"), latency: $("latency"),
  stages: $("stages"), counters: $("counters"),
  videoCard: document.querySelector(".video-card"), gridCard: $("grid-card"), tiles: $("tiles"),
  gridInfo: $("grid-info"), gridBanner: $("grid-banner"), selected: $("selected"),
};

let labels = [];
let latest = null; // newest frame event (of the selected source)
let stateEvent = null; // newest state event (of the selected source, or the run's end)
let history = []; // [{t, label, name}] of smoothed labels, oldest first (of the selected source)
const feeds = new Map(); // source index -> {index, name, latest, history, state, status, tile}
let selected = 0;
let multi = false; // several sources: the grid of tiles
let runState = null; // a state event of the whole run (its end)
let dirty = false;
let events = 0;
let connected = false;

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

function showState(name, message) {
  const state = STATES[name] || name || "wait";
  view.state.textContent = state;
  view.state.className = `state state-${state}`;
  const alert = state !== "live" && state !== "wait";
  view.banner.hidden = !alert;
  if (alert) {
    const titles = { stale: "Stale: no new frame", reconnecting: "Reconnecting to the source…",
      ended: "The source has ended", failed: "The source was lost",
      offline: "Connection to the edge box lost, retrying…" };
    view.banner.textContent = message ? `${titles[state] || state}: ${message}` : titles[state] || state;
    view.banner.classList.toggle("bad", state === "ended" || state === "offline" || state === "failed");
  }
}

function render() {
  dirty = false;
  document.body.dataset.events = String(events);
  if (!connected && stateEvent && stateEvent.state === "ended") showState("ended", stateEvent.message);
  else if (!connected) showState("offline");
  else if (stateEvent && (!latest || stateEvent.seq > latest.seq)) showState(stateEvent.state, stateEvent.message);
  else if (latest) showState(latest.state || "live");
  if (multi) renderTiles();
  if (!latest) return;
  const e = latest;
  view.frameinfo.textContent = `frame ${e.frame ?? "—"} · t ${fmt(e.t, 2)} s`;

  const s = e.smoothed || {};
  view.nowName.textContent = s.name ?? s.label ?? "—";
  view.nowLabel.textContent = `label ${s.label ?? "—"}`;
  view.nowProb.textContent = pct(s.prob);
  view.nowBar.style.width = `${Math.max(0, Math.min(1, s.prob || 0)) * 100}%`;
  view.nowBar.style.background = colour(s.label);
  document.title = `${s.name ?? s.label ?? "live"} · mgc-edge`;

  renderTop(e.top || []);
  const fps = e.fps || {};
  view.fpsCapture.textContent = fmt(fps.capture);
  view.fpsInference.textContent = fmt(fps.inference);
  const lat = e.latency_ms || {};
  const total = lat.total ?? lat.end_to_end ?? Object.values(lat).reduce((a, v) => a + (+v || 0), 0);
  view.latency.textContent = fmt(total);
  view.stages.textContent = Object.entries(lat)
    .filter(([k]) => k !== "total" && k !== "end_to_end")
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(" · ");
  renderTimeline(view.timeline, history, view.legend);
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
  if (!history.length) return;
  const end = history[history.length - 1].t;
  const x = (t) => ((t - (end - WINDOW_S)) / WINDOW_S) * width;
  for (let i = 0; i < history.length; i++) {
    const h = history[i];
    const next = i + 1 < history.length ? history[i + 1].t : end + 0.1;
    if (next - h.t > 1.0) continue; // a gap (reconnecting, stale): leave it empty
    ctx.fillStyle = colour(h.label);
    ctx.fillRect(Math.floor(x(h.t)), 0, Math.ceil(x(next) - x(h.t)) + 1, height);
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

function feed(index, name) {
  let f = feeds.get(index);
  if (!f) {
    f = { index, name: name || `source ${index}`, latest: null, history: [], state: null, status: null, tile: null };
    feeds.set(index, f);
    if (multi) addTile(f);
  }
  if (name) f.name = name;
  return f;
}

function record(f, e) {
  const s = e.smoothed;
  if (s && typeof e.t === "number") {
    let h = f.history;
    if (h.length && e.t < h[h.length - 1].t) h = f.history = []; // the source started again
    h.push({ t: e.t, label: s.label, name: s.name });
    const from = e.t - WINDOW_S - 1;
    let drop = 0;
    while (drop < h.length && h[drop].t < from) drop++;
    if (drop) h.splice(0, drop);
  }
  f.latest = e;
}

function onFrame(message) {
  const e = JSON.parse(message.data);
  e.seq = +message.lastEventId || 0;
  events++;
  const src = e.source || {};
  const f = feed(src.index ?? 0, src.name);
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
    const f = feed(e.source.index, e.source.name);
    f.state = e;
    if (f.index === selected) stateEvent = e;
  } else {
    runState = e; // the end of the whole run
    stateEvent = e;
  }
  schedule();
}

// -- several sources ----------------------------------------------------------------------------------------

function enableMulti() {
  if (multi) return;
  multi = true;
  view.videoCard.hidden = true;
  view.video.removeAttribute("src"); // the one MJPEG stream gives its connection to the tiles
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

function loadTile(f) {
  const started = performance.now();
  const again = (ms) => setTimeout(() => loadTile(f), ms);
  f.tile.img.onload = () => {
    f.tile.frame.classList.add("has-frame");
    f.tile.frame.querySelector(".placeholder").hidden = true;
    again(Math.max(0, TILE_MS(feeds.size) - (performance.now() - started)));
  };
  f.tile.img.onerror = () => again(1000); // no frame yet, or the server is gone: ask again shortly
  f.tile.img.src = withToken("frame.jpg", { source: f.index, n: Date.now() });
}

function select(index) {
  selected = index;
  const f = feeds.get(index);
  latest = f ? f.latest : null;
  history = f ? f.history : [];
  stateEvent = (f && f.state) || runState;
  view.legend.dataset.key = "";
  for (const g of feeds.values()) if (g.tile) g.tile.root.classList.toggle("selected", g.index === index);
  if (f) view.selected.textContent = `· source ${f.index} · ${f.name}`;
  schedule();
}

function tileState(f) {
  if (runState && runState.state === "ended" && !connected) return ["ended", runState.message];
  const st = f.state;
  if (st && (!f.latest || st.seq > f.latest.seq)) return [st.state, st.message];
  return [f.latest ? f.latest.state || "live" : "wait", ""];
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
    t.name.textContent = f.name;
    const [state, message] = tileState(f);
    t.state.textContent = state;
    t.state.className = `state state-${state}`;
    t.message.hidden = state === "live" || state === "wait" || !message;
    t.message.textContent = message || "";
    t.message.classList.toggle("bad", state === "failed" || state === "ended");
    const e = f.latest;
    if (e) {
      const s = e.smoothed || {};
      t.now.textContent = s.name ?? s.label ?? "—";
      t.prob.textContent = pct(s.prob);
      t.bar.style.width = `${Math.max(0, Math.min(1, s.prob || 0)) * 100}%`;
      t.bar.style.background = colour(s.label);
    }
    renderTimeline(t.timeline, f.history, null);
    t.figures.textContent = tileFigures(f);
  }
}

// A tile's figures: rates and latency of its newest frame, counters from the status poll.
function tileFigures(f) {
  const e = f.latest || {};
  const fps = e.fps || {};
  const st = f.status || {};
  const frames = st.frames || {};
  const e2e = ((st.latency_ms || {}).end_to_end || {}).p95;
  const items = [
    ["capture", fps.capture !== undefined ? `${fmt(fps.capture)} fps` : undefined],
    ["classified", fps.inference !== undefined ? `${fmt(fps.inference)}/s` : undefined],
    ["e2e p95", typeof e2e === "number" ? `${e2e.toFixed(0)} ms` : undefined],
    ["dropped", frames.dropped], ["reconnects", st.reconnects],
  ];
  return items.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${v}`).join(" · ");
}

function connectEvents() {
  const source = new EventSource(withToken("events"));
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

function connectVideo() {
  view.video.onload = () => {
    view.placeholder.hidden = true;
    view.video.parentElement.classList.add("has-frame");
  };
  view.video.onerror = () => {
    // The stream ended (server stopped, too many viewers, network): try again shortly.
    setTimeout(() => { if (!multi) view.video.src = withToken("stream.mjpg", { retry: Date.now() }); }, 2000);
  };
  view.video.src = withToken("stream.mjpg");
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
    ["viewers", status.server && status.server.streams ? status.server.streams.mjpeg : undefined],
  ];
  return items.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${v}`).join(" · ");
}

async function pollStatus(first) {
  try {
    const response = await fetch(withToken("api/status"), { cache: "no-store" });
    if (response.ok) {
      const status = await response.json();
      if (first) describeModel(status.model || {}, (status.loop || {}).source);
      const sources = (status.loop || {}).sources;
      if (Array.isArray(sources)) {
        for (const entry of sources) feed(entry.index, entry.name).status = entry;
        if (sources.length > 1) enableMulti();
        if (multi) schedule();
      }
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
