// mnist-live page: draw with pointer events, stream stroke snapshots, show the live prediction.
//
// Transport: WebSocket (protocol v1, docs/protocol.md) while it is open; HTTP POST /predict while it is
// not (after the first failed connect, or while reconnecting). Snapshots are the full stroke list in
// the canvas's logical 280x280 px space (y down), sent at most once per animation frame (~30 fps cap)
// while drawing and always once more on pen-up. Replies older than the one shown are ignored.
//
// "Not a digit" (status not_a_digit) is shown only for the snapshot sent at pen-up, or kept while it is
// already shown: a digit's first strokes often read as no digit (a bar, a hook), so while the pen is down a
// not_a_digit reply never replaces what is on screen. Mid-stroke the display changes only to digits; the
// reply to the pen-up snapshot settles it (docs/protocol.md).
//
// Query parameters: ?ws=wss://host/ws (WebSocket URL), ?api=https://host/predict (HTTP endpoint),
// ?token=... (sent as ?token= on the WebSocket and as a Bearer header over HTTP), ?fps=N (snapshots per
// second while drawing, 1-60; default ~30; fewer cost less on AWS, see docs/cost.md), ?mode=number (start
// in number mode: a wide canvas read as a number, see number.js).

import { NUMBER_WIDTH, clearNumber, showNumber } from "./number.js";

const SIZE = 280; // logical canvas height (and width in digit mode), CSS px; what the server is told
const STROKE_WIDTH = 16; // pen diameter in logical px
const MIN_SEND_INTERVAL_MS = sendInterval(); // ~30 fps cap on snapshots while drawing (33 ms), or ?fps=
const MIN_POINT_DIST = 0.75; // logical px: closer points add nothing at 28x28
const MAX_POINTS = 3500; // stay under the server's 4096-point limit by thinning
const PING_INTERVAL_MS = 20_000;
const CONNECT_TIMEOUT_MS = 4_000;
const CONNECT_GRACE_MS = 800; // drawing while the first connect hangs longer than this uses HTTP
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8_000;
const STABLE_AFTER_MS = 3_000; // a connection open this long resets the backoff
const HTTP_RETRY_MS = 2_000;

const STATE_TEXT = {
  connecting: "Connecting…",
  ws: "Live · WebSocket",
  http: "HTTP fallback",
  offline: "Offline",
};

// ------------------------------------------------------------------------------------- configuration

function endpoints() {
  const q = new URLSearchParams(location.search);
  const wsScheme = location.protocol === "https:" ? "wss:" : "ws:";
  let ws = `${wsScheme}//${location.host}/ws`;
  let api = new URL("predict", `${location.origin}/`).href;
  const wsParam = q.get("ws");
  if (wsParam && /^wss?:\/\//i.test(wsParam)) ws = wsParam;
  const apiParam = q.get("api");
  if (apiParam && /^https?:\/\//i.test(apiParam)) api = apiParam;
  const token = q.get("token");
  if (token) {
    try {
      const u = new URL(ws);
      u.searchParams.set("token", token);
      ws = u.href;
    } catch {
      ws = ""; // a malformed ?ws= cannot be connected to: the page uses HTTP instead
    }
  }
  return { ws, api, token };
}

/** Milliseconds between snapshots while drawing: 1000 / ?fps= when it is 1-60, else 33 (~30 fps). */
function sendInterval() {
  const fps = Number(new URLSearchParams(location.search).get("fps"));
  return fps >= 1 && fps <= 60 ? 1000 / fps : 33;
}

const config = endpoints();

// ------------------------------------------------------------------------------------------ elements

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const digitEl = $("digit");
const barsEl = $("probabilities");
const statusEl = $("status");
const latencyEl = $("latency");
const serverMsEl = latencyEl.nextElementSibling;
const clearBtn = $("clear");
const errorEl = $("error");
const confidenceEl = document.getElementById("confidence");
const announceEl = document.getElementById("announce");
const wrapEl = canvas.parentElement;
const undoBtn = $("undo");
const modeBtn = $("mode");
const layoutEl = document.querySelector(".layout");
const numberEls = { number: $("number"), readings: $("readings"), boxes: $("boxes") };
const numberResultEl = numberEls.number.parentElement;
const helpEl = document.getElementById("pad-help");
const DIGIT_HELP = helpEl.textContent;
const NUMBER_HELP = "Write a number, digits side by side. It is read while you write; Undo removes the last stroke, Escape clears.";

const bars = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.dataset.digit = String(d);
  li.dataset.p = "0";
  li.innerHTML =
    `<span class="bar-label">${d}</span>` +
    `<span class="bar-track" aria-hidden="true"><span class="bar-fill"></span></span>` +
    `<span class="bar-pct">0%</span>`;
  barsEl.append(li);
  bars.push({ li, fill: li.querySelector(".bar-fill"), pct: li.querySelector(".bar-pct") });
}

// --------------------------------------------------------------------------------------------- state

/** Strokes in logical px, y down: [[[x, y], ...], ...]. */
let strokes = [];
let mode = new URLSearchParams(location.search).get("mode") === "number" ? "number" : "digit";
let width = SIZE; // logical canvas width: SIZE in digit mode, NUMBER_WIDTH in number mode
let activePointer = null; // pointerId of the pen that is down, or null
let version = 0; // bumped whenever strokes change
let sentVersion = 0; // version of the last snapshot sent (any transport)
let seq = 0; // last seq sent; strictly increasing for the page's life
let shownSeq = 0; // seq of the prediction on screen; replies at or below are stale
let lastSendAt = -Infinity;
const sentAt = new Map(); // seq -> performance.now() at send, for round-trip latency
const penUpSeqs = new Set(); // seqs of snapshots sent with the pen up: their not_a_digit answer is shown

let state = "connecting";
let ws = null;
let wsEverOpened = false;
let wsFailedOnce = false;
let connectStartedAt = performance.now();
let attempt = 0;
let reconnectTimer = 0;
let connectTimer = 0;
let stableTimer = 0;
let pingTimer = 0;
let httpInFlight = false;
let httpOk = null; // null unknown, true reachable, false failing
let httpRetryTimer = 0;
let rafId = 0;

window.mnistLive = Object.freeze({
  get state() { return state; },
  get lastSeq() { return seq; },
  get shownSeq() { return shownSeq; },
  get unsent() { return strokes.length > 0 && version !== sentVersion; }, // a snapshot waits to be sent
  get endpoints() { return { ws: config.ws, api: config.api }; },
  get mode() { return mode; },
});

// -------------------------------------------------------------------------------------------- canvas

let scale = 1; // backing-store pixels per logical px

function colors() {
  const cs = getComputedStyle(canvas);
  return { ink: cs.getPropertyValue("--ink").trim() || "#000", paper: cs.getPropertyValue("--paper").trim() || "#fff" };
}
let palette = colors();

function resizeBacking() {
  const rect = canvas.getBoundingClientRect();
  const side = rect.width || width;
  const dpr = window.devicePixelRatio || 1;
  const px = Math.max(1, Math.round(side * dpr));
  const pxHigh = Math.max(1, Math.round((px * SIZE) / width));
  if (canvas.width !== px || canvas.height !== pxHigh) {
    canvas.width = px;
    canvas.height = pxHigh;
  }
  scale = px / width;
  redraw();
}

function setupPen() {
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = STROKE_WIDTH;
  ctx.strokeStyle = palette.ink;
  ctx.fillStyle = palette.ink;
}

function redraw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = palette.paper;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  setupPen();
  for (const s of strokes) {
    dot(s[0]);
    if (s.length > 1) {
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[0][1]);
      for (let i = 1; i < s.length; i++) ctx.lineTo(s[i][0], s[i][1]);
      ctx.stroke();
    }
  }
}

function dot([x, y]) {
  ctx.beginPath();
  ctx.arc(x, y, STROKE_WIDTH / 2, 0, Math.PI * 2);
  ctx.fill();
}

function segment(a, b) {
  ctx.beginPath();
  ctx.moveTo(a[0], a[1]);
  ctx.lineTo(b[0], b[1]);
  ctx.stroke();
}

const round1 = (v) => Math.round(v * 10) / 10;

function toLogical(e, rect) {
  const k = width / (rect.width || width);
  const x = Math.min(width, Math.max(0, (e.clientX - rect.left) * k));
  const y = Math.min(SIZE, Math.max(0, (e.clientY - rect.top) * k));
  return [round1(x), round1(y)];
}

function addPoint(p, force) {
  const s = strokes[strokes.length - 1];
  const last = s[s.length - 1];
  const dist = Math.hypot(p[0] - last[0], p[1] - last[1]);
  if (dist === 0 || (!force && dist < MIN_POINT_DIST)) return false;
  s.push(p);
  segment(last, p);
  return true;
}

canvas.addEventListener("pointerdown", (e) => {
  if (activePointer !== null) return; // one pen at a time; ignore extra fingers
  if (e.pointerType === "mouse" && e.button !== 0) return;
  e.preventDefault();
  activePointer = e.pointerId;
  try { canvas.setPointerCapture(e.pointerId); } catch { /* pointer already gone */ }
  const p = toLogical(e, canvas.getBoundingClientRect());
  strokes.push([p]);
  setupPen();
  dot(p);
  wrapEl.classList.add("inked");
  changed();
});

canvas.addEventListener("pointermove", (e) => {
  if (e.pointerId !== activePointer) return;
  e.preventDefault();
  const rect = canvas.getBoundingClientRect();
  const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
  let moved = false;
  for (const ev of events.length ? events : [e]) moved = addPoint(toLogical(ev, rect), false) || moved;
  if (moved) changed();
});

function penUp(e) {
  if (e.pointerId !== activePointer) return;
  activePointer = null;
  if (e.type === "pointerup") addPoint(toLogical(e, canvas.getBoundingClientRect()), true);
  try { canvas.releasePointerCapture(e.pointerId); } catch { /* already released */ }
  thin();
  version++;
  updateCanvasLabel();
  pump(true); // the final snapshot, never throttled
}
canvas.addEventListener("pointerup", penUp);
canvas.addEventListener("pointercancel", penUp);
canvas.addEventListener("lostpointercapture", penUp);
// Older touch stacks scroll unless touchmove is cancelled; touch-action: none covers the rest.
canvas.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });
canvas.addEventListener("touchstart", (e) => e.preventDefault(), { passive: false });
canvas.addEventListener("contextmenu", (e) => e.preventDefault());

/** Keep the snapshot under the server's point limit by dropping every other interior point. */
function thin() {
  let total = strokes.reduce((n, s) => n + s.length, 0);
  while (total > MAX_POINTS) {
    strokes = strokes.map((s) => (s.length > 2 ? s.filter((_, i) => i % 2 === 0 || i === s.length - 1) : s));
    const next = strokes.reduce((n, s) => n + s.length, 0);
    if (next === total) break;
    total = next;
  }
}

function changed() {
  version++;
  if (strokes.reduce((n, s) => n + s.length, 0) > MAX_POINTS) thin();
  schedule();
}

function updateCanvasLabel() {
  const n = strokes.length;
  canvas.setAttribute(
    "aria-label",
    n === 0 ? "Drawing canvas, empty" : `Drawing canvas with your handwriting, ${n} stroke${n === 1 ? "" : "s"}`,
  );
}

// ------------------------------------------------------------------------------------------- sending

function schedule() {
  if (!rafId) rafId = requestAnimationFrame(() => { rafId = 0; pump(false); });
}

function snapshot() {
  const frame = { strokes, width, height: SIZE, stroke_width: STROKE_WIDTH };
  return mode === "number" ? { ...frame, mode } : frame;
}

function wsOpen() {
  return ws !== null && ws.readyState === WebSocket.OPEN;
}

function useHttp() {
  if (wsOpen()) return false;
  if (wsFailedOnce || wsEverOpened) return true;
  return performance.now() - connectStartedAt > CONNECT_GRACE_MS;
}

/** Send the latest snapshot if it is unsent and the transport allows it now. */
function pump(final) {
  if (version === sentVersion || strokes.length === 0) return;
  const now = performance.now();
  if (wsOpen()) {
    // Latest wins on a slow link too: while earlier bytes are still queued, wait (never for the final).
    if (!final && (now - lastSendAt < MIN_SEND_INTERVAL_MS || ws.bufferedAmount > 0)) return schedule();
    sendWs(now);
  } else if (useHttp()) {
    if (!httpInFlight) sendHttp(now);
    // else: sent when the request in flight returns
  } else {
    schedule(); // first connect still pending: look again next frame
  }
}

function nextSeq(now) {
  seq += 1;
  sentAt.set(seq, now);
  if (sentAt.size > 256) sentAt.delete(sentAt.keys().next().value);
  if (activePointer === null) penUpSeqs.add(seq);
  if (penUpSeqs.size > 256) penUpSeqs.delete(penUpSeqs.values().next().value);
  lastSendAt = now;
  sentVersion = version;
  return seq;
}

function sendWs(now) {
  const n = nextSeq(now);
  try {
    ws.send(JSON.stringify({ action: "predict", seq: n, ...snapshot() }));
  } catch {
    sentVersion = -1; // not sent after all; retried on the next transport
  }
}

async function sendHttp(now) {
  const n = nextSeq(now);
  const since = version;
  httpInFlight = true;
  const headers = { "Content-Type": "application/json" };
  if (config.token) headers.Authorization = `Bearer ${config.token}`;
  let body = null;
  let reached = false;
  try {
    const res = await fetch(config.api, { method: "POST", headers, body: JSON.stringify(snapshot()), cache: "no-store" });
    reached = true;
    body = await res.json().catch(() => null);
    if (!res.ok) {
      onError({ seq: n, error: body?.error ?? { code: `http_${res.status}`, message: res.statusText } });
    } else if (body) {
      onPrediction({ ...body, type: "prediction", seq: n });
    }
  } catch {
    reached = false;
  }
  httpInFlight = false;
  setHttpHealth(reached);
  if (!reached && sentVersion === since) sentVersion = -1; // resend this drawing when possible
  if (reached) pump(true); // the latest snapshot drawn meanwhile, including the final one
  else scheduleHttpRetry();
}

function setHttpHealth(ok) {
  httpOk = ok;
  if (!wsOpen() && (wsFailedOnce || wsEverOpened)) setState(ok ? "http" : "offline");
}

/** Is the HTTP endpoint reachable? One blank snapshot (answered no_digit); any HTTP status counts. */
async function probeHttp() {
  if (httpInFlight || strokes.length) return; // a real request answers that question anyway
  const headers = { "Content-Type": "application/json" };
  if (config.token) headers.Authorization = `Bearer ${config.token}`;
  let reached = false;
  try {
    const body = JSON.stringify({ strokes: [], width, height: SIZE, stroke_width: STROKE_WIDTH });
    const res = await fetch(config.api, { method: "POST", headers, body, cache: "no-store" });
    reached = true;
    await res.arrayBuffer().catch(() => null);
  } catch {
    reached = false;
  }
  if (!wsOpen()) setHttpHealth(reached);
}

function scheduleHttpRetry() {
  clearTimeout(httpRetryTimer);
  httpRetryTimer = setTimeout(() => pump(true), HTTP_RETRY_MS);
}

// ------------------------------------------------------------------------------------------ receiving

function onMessage(ev) {
  let msg;
  try { msg = JSON.parse(ev.data); } catch { return; }
  if (!msg || typeof msg !== "object") return;
  if (msg.type === "prediction") onPrediction(msg);
  else if (msg.type === "error") onError(msg);
  // "pong" needs nothing: it only keeps the connection (and API Gateway's idle timer) alive
}

function onPrediction(msg) {
  const n = Number(msg.seq);
  if (!Number.isFinite(n) || n <= shownSeq) return; // stale, duplicate, or from before Clear
  shownSeq = n;
  const t0 = sentAt.get(n);
  const rtt = t0 === undefined ? null : performance.now() - t0;
  for (const k of sentAt.keys()) if (k <= n) sentAt.delete(k);
  const atPenUp = penUpSeqs.has(n);
  for (const k of penUpSeqs) if (k <= n) penUpSeqs.delete(k);
  showLatency(rtt, msg.latency_ms);
  hideError();
  const probs = Array.isArray(msg.probabilities) && msg.probabilities.length === 10 ? msg.probabilities : null;
  if (msg.mode === "number") {
    if (mode === "number") showNumber(msg, numberEls, { width, height: SIZE });
  } else if (msg.status === "ok" && probs) {
    showPrediction(msg.digit, probs, msg.confidence);
  } else if (msg.status === "not_a_digit" && probs) {
    if (atPenUp || digitEl.dataset.status === "not_a_digit") showNotADigit(probs, msg.not_a_digit_score);
    // else: the pen is down on what may be a digit's first strokes; keep what is shown
  } else {
    showNoDigit();
  }
  if (activePointer === null && n === seq && sentVersion === version) announce(); // the settled answer
}

function onError(msg) {
  const n = msg.seq == null ? null : Number(msg.seq);
  if (n !== null && n <= shownSeq) return;
  if (n !== null) shownSeq = n; // the answer for this frame is "error"; older replies are stale now
  const code = msg.error?.code ?? "error";
  const text = {
    payload_too_large: "Too much ink for one frame. Press Clear and draw again.",
    invalid_strokes: "Too many strokes for one frame. Press Clear and draw again.",
    rate_limited: "Slow down: the server is limiting frames.",
    model_unavailable: "The model is not available right now.",
    unauthorized: "This server needs a token: open the page with ?token=… in its address.",
    forbidden_origin: "This server does not accept connections from this page's origin.",
  }[code] ?? `Server error (${code}): ${msg.error?.message ?? ""}`.trim();
  showError(text);
}

// --------------------------------------------------------------------------------------------- view

const fmtPct = (p) => (p >= 0.1 || p === 0 ? `${Math.round(p * 100)}%` : `${(p * 100).toFixed(1)}%`);

function showPrediction(digit, probs, confidence) {
  const d = Number.isInteger(digit) ? digit : probs.indexOf(Math.max(...probs));
  const conf = typeof confidence === "number" ? confidence : probs[d];
  digitEl.textContent = String(d);
  digitEl.dataset.digit = String(d);
  digitEl.dataset.status = "ok";
  digitEl.classList.remove("empty", "not-digit");
  confidenceEl.textContent = `${fmtPct(conf)} sure`;
  showBars(probs, d);
}

/** The drawing is not a digit: say so; the bars keep the digits' probabilities, none highlighted. */
function showNotADigit(probs, score) {
  digitEl.textContent = "Not a digit";
  digitEl.dataset.digit = "";
  digitEl.dataset.status = "not_a_digit";
  digitEl.classList.remove("empty");
  digitEl.classList.add("not-digit");
  confidenceEl.textContent = typeof score === "number" ? `${fmtPct(score)} sure` : "";
  showBars(probs, -1);
}

function showBars(probs, top) {
  for (let i = 0; i < 10; i++) {
    const p = Number(probs[i]) || 0;
    const b = bars[i];
    b.li.dataset.p = String(p);
    b.li.classList.toggle("is-top", i === top);
    b.fill.style.transform = `scaleX(${Math.min(1, Math.max(0, p))})`;
    b.pct.textContent = fmtPct(p);
  }
}

function showNoDigit(hint = "draw a digit") {
  digitEl.textContent = "—";
  digitEl.dataset.digit = "";
  digitEl.dataset.status = "";
  digitEl.classList.remove("not-digit");
  digitEl.classList.add("empty");
  confidenceEl.textContent = hint;
  for (const b of bars) {
    b.li.dataset.p = "0";
    b.li.classList.remove("is-top");
    b.fill.style.transform = "scaleX(0)";
    b.pct.textContent = "0%";
  }
}

function announce() {
  if (mode === "number") {
    const n = numberEls.number.dataset.number;
    announceEl.textContent = n === "" ? "No number recognised yet." : `Number: ${n}.`;
    return;
  }
  const d = digitEl.dataset.digit;
  announceEl.textContent =
    digitEl.dataset.status === "not_a_digit"
      ? `Not a digit, ${confidenceEl.textContent}.`
      : d === "" ? "No digit recognised yet." : `Prediction: ${d}, ${confidenceEl.textContent}.`;
}

function showLatency(rtt, serverMs) {
  if (rtt === null) return;
  latencyEl.textContent = `${Math.round(rtt)} ms`;
  serverMsEl.textContent =
    typeof serverMs === "number" ? ` · server ${serverMs < 10 ? serverMs.toFixed(1) : Math.round(serverMs)} ms` : "";
  latencyEl.dataset.rtt = String(Math.round(rtt));
}

function showError(text) {
  if (errorEl.textContent !== text) errorEl.textContent = text;
  errorEl.hidden = false;
}

function hideError() {
  if (!errorEl.hidden) errorEl.hidden = true;
}

function setState(next) {
  if (state === next) return;
  state = next;
  statusEl.dataset.state = next;
  statusEl.textContent = STATE_TEXT[next];
}

function clearAll() {
  if (activePointer !== null) { // Escape mid-stroke: the pen's remaining moves draw nothing
    try { canvas.releasePointerCapture(activePointer); } catch { /* already released */ }
    activePointer = null;
  }
  strokes = [];
  version++;
  sentVersion = version; // nothing to send for an empty canvas
  shownSeq = seq; // replies still in flight belong to the old drawing
  sentAt.clear();
  penUpSeqs.clear();
  redraw();
  wrapEl.classList.remove("inked");
  updateCanvasLabel();
  showNoDigit();
  clearNumber(numberEls);
  hideError();
  announceEl.textContent = "Cleared.";
}

/** Remove the last stroke (not while one is being drawn) and ask again for what is left. */
function undo() {
  if (activePointer !== null || strokes.length === 0) return;
  if (strokes.length === 1) return clearAll();
  strokes = strokes.slice(0, -1);
  version++;
  redraw();
  updateCanvasLabel();
  pump(true);
}

/** Switch between one digit on the square canvas and a number on the wide one; clears the drawing. */
function setMode(next) {
  mode = next;
  width = mode === "number" ? NUMBER_WIDTH : SIZE;
  layoutEl.classList.toggle("number-mode", mode === "number");
  modeBtn.setAttribute("aria-pressed", String(mode === "number"));
  numberResultEl.hidden = mode !== "number";
  canvas.nextElementSibling.textContent = mode === "number" ? "Write a number here" : "Draw a digit 0–9 here";
  helpEl.textContent = mode === "number" ? NUMBER_HELP : DIGIT_HELP;
  clearAll();
  resizeBacking();
}

clearBtn.addEventListener("click", clearAll);
undoBtn.addEventListener("click", undo);
modeBtn.addEventListener("click", () => setMode(mode === "number" ? "digit" : "number"));
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !e.repeat) {
    e.preventDefault();
    clearAll();
  } else if ((e.ctrlKey || e.metaKey) && e.key === "z") {
    e.preventDefault();
    undo();
  }
});

// ---------------------------------------------------------------------------------------- WebSocket

function connect() {
  clearTimeout(reconnectTimer);
  connectStartedAt = performance.now();
  let sock;
  try {
    sock = new WebSocket(config.ws);
  } catch {
    onWsDown(null);
    return;
  }
  ws = sock;
  connectTimer = setTimeout(() => { if (sock.readyState === WebSocket.CONNECTING) sock.close(); onWsDown(sock); }, CONNECT_TIMEOUT_MS);
  sock.addEventListener("open", () => {
    if (ws !== sock) return;
    clearTimeout(connectTimer);
    wsEverOpened = true;
    setState("ws");
    stableTimer = setTimeout(() => { attempt = 0; }, STABLE_AFTER_MS);
    pingTimer = setInterval(() => { if (sock.readyState === WebSocket.OPEN) sock.send('{"action":"ping"}'); }, PING_INTERVAL_MS);
    if (shownSeq < seq && strokes.length) sentVersion = -1; // an answer was lost with the old transport
    pump(true);
  });
  sock.addEventListener("message", (ev) => { if (ws === sock) onMessage(ev); });
  sock.addEventListener("close", () => onWsDown(sock));
  // "error" is always followed by "close"; nothing to do here
}

function onWsDown(sock) {
  if (sock !== null && ws !== sock) return; // an old socket, already handled
  clearTimeout(connectTimer);
  clearTimeout(stableTimer);
  clearInterval(pingTimer);
  ws = null;
  if (!wsEverOpened) wsFailedOnce = true;
  setState(httpOk === false || navigator.onLine === false ? "offline" : "http");
  if (shownSeq < seq && strokes.length) sentVersion = -1; // resend what the socket never answered
  pump(true);
  if (httpOk !== true) probeHttp(); // until HTTP is known to work, check it on every failed connect
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  attempt = Math.min(attempt + 1, 10);
  reconnectTimer = setTimeout(connect, delay / 2 + Math.random() * (delay / 2)); // "equal jitter"
}

window.addEventListener("online", () => { if (!wsOpen()) { attempt = 0; connect(); } });
window.addEventListener("offline", () => { if (!wsOpen()) setState("offline"); });

// ------------------------------------------------------------------------------------------- start

showNoDigit();
if (mode === "number") setMode("number");
resizeBacking();
new ResizeObserver(resizeBacking).observe(canvas);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { palette = colors(); redraw(); });
(function watchDpr() {
  const mq = matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
  mq.addEventListener("change", () => { resizeBacking(); watchDpr(); }, { once: true });
})();
connect();
