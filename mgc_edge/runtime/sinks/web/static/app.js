// mgc-edge live view: MJPEG frames on the left, the predictions (Server-Sent Events) on the right. With several
// sources, the left is a grid of tiles (frame, smoothed label, timeline, figures), and the right shows the
// selected tile in full. Events may arrive faster than the screen refreshes; they are recorded as they come and
// drawn once per animation frame. The token (if any) travels as ?token= because <img> and EventSource cannot
// set headers. Frames come with the event they were drawn for (X-Event), so that the caption under a picture
// says what the picture shows; a source that is down shows it: no label, greyed rates, its state and since when.
"use strict";

const STATUS_EVERY_MS = 2000;
const STATES = { live: "live", stale: "stale", reconnecting: "reconnecting", ended: "ended", failed: "failed" };
const DOWN = new Set(["stale", "reconnecting", "ended", "failed", "offline"]);
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

// A source's message often starts with its state ("reconnecting (try 3, next in 2.0 s)"), which the banner's
// title already says: the banner shows only what is inside.
function detailOf(state, message) {
  const inside = (message || "").match(new RegExp(`^${state} \\((.*)\\)$`, "s"));
  return inside ? inside[1] : message;
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
    const detail = detailOf(state, message);
    view.banner.textContent = detail ? `${head}: ${detail}` : head;
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

// The one source's MJPEG stream (frames.js reads it): each part carries the event its frame was drawn for, so
// the caption under the picture is that frame's.
let videoAbort = null;
let videoCaption = null; // the event of the frame the video shows (its X-Event)
function showVideo(jpeg, e) {
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
    await readMjpeg(withToken("stream.mjpg", { viewer: viewerId }), controller.signal, showVideo);
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
