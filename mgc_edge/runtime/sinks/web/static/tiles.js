// mgc-edge live view, several sources: a grid of tiles (frame, smoothed label, timeline, figures; a source that
// is down greyed, with its state and since when), and the selected tile in full on the right. Used by app.js.
"use strict";

// Tiles load still frames (one short request each), not one MJPEG stream per source: a browser opens about 6
// connections per host, and 16 tiles must not wait for each other. The interval grows with the tiles.
const TILE_MS = (n) => Math.max(200, 50 * n);

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
