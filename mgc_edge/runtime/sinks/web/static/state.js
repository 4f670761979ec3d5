// mgc-edge live view: what a source is doing now (its state, the newest message, since when) from its events and
// the status poll, and how numbers and times are written. Used by app.js.
"use strict";

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

// The rates of a source that is down: the status poll's once it says the same state (until then, none: the
// last frame's would claim a rate it no longer has).
function downRates(f, state) {
  const st = (f && f.status) || {};
  return st.state === state && st.fps ? st.fps : {};
}
