// mgc-edge live view: pictures with the event each was drawn for. A JPEG's X-Event header (or, in the MJPEG
// stream, its part's) says which frame it is and its label, so that a caption under a picture is that picture's.
// Pictures are read by fetch() and shown through blob URLs, since an <img> cannot read headers.
"use strict";

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

// The event in an MJPEG part's headers (null without one).
function partCaption(head) {
  const line = /^x-event:\s*(.+)$/im.exec(head);
  try {
    return line ? JSON.parse(line[1]) : null;
  } catch (err) {
    return null;
  }
}

// Read an MJPEG stream until it ends, calling onPart(jpeg, event) for the newest complete part of each chunk.
async function readMjpeg(url, signal, onPart) {
  const response = await fetch(url, { cache: "no-store", signal });
  if (!response.ok || !response.body) throw new Error(`stream.mjpg ${response.status}`);
  const reader = response.body.getReader();
  let pending = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(pending.length + value.length);
    joined.set(pending);
    joined.set(value, pending.length);
    const { found, rest } = parts(joined);
    pending = rest;
    const newest = found[found.length - 1];
    if (newest) onPart(newest.jpeg, partCaption(newest.head));
  }
}
