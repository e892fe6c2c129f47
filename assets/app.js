// print2mqtt status page: renders the live feed from api/stream (Server-Sent
// Events). Every URL is relative, so the page works under any path prefix
// (Home Assistant ingress sets <base>). Data goes into the DOM as text only.
"use strict";

const MAX_LOG = 200;
const printers = new Map(); // slug -> printer JSON
let logEntries = []; // newest first
let lastSeq = -1;
let bridge = null;
let clockSkewMs = 0; // server time minus browser time
// App Connection registration per lowercased printer id (api/appconnection),
// for printers with an app_token.
let appConnections = new Map();
const APP_CONNECTION_POLL_MS = 30000;
const APP_CONNECTION_LOOK = {
  registered: "ok", pending: "warn", retrying: "warn",
  mismatch: "bad", rejected: "bad", not_found: "bad", revoked: "bad",
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function now() { return Date.now() + clockSkewMs; }

function duration(secs) {
  secs = Math.max(0, Math.round(secs));
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600),
    m = Math.floor(secs % 3600 / 60), s = secs % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

function age(iso) {
  const secs = (now() - Date.parse(iso)) / 1000;
  return secs < 5 ? "just now" : `${duration(secs)} ago`;
}

function localTime(iso, withSeconds) {
  const t = new Date(iso);
  const opts = { hour: "2-digit", minute: "2-digit" };
  if (withSeconds) opts.second = "2-digit";
  const sameDay = t.toDateString() === new Date().toDateString();
  const time = t.toLocaleTimeString([], opts);
  return sameDay ? time : `${t.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

function label(name) { return (name || "unknown").replace(/_/g, " "); }

const ACTIVE = new Set(["printing", "paused", "needs_attention"]);

function remaining(p) {
  if (!ACTIVE.has(p.state)) return null;
  if (p.eta) return Math.max(0, (Date.parse(p.eta) - now()) / 1000);
  return p.time_remaining;
}

function card(p) {
  const state = p.state || "unknown";
  const c = el("article", { class: `card ${state}${p.problem ? " problem" : ""}`, "data-printer": p.printer });
  const badges = el("div", { class: "badges" },
    el("span", { class: `badge state ${state}`, text: label(p.state) }));
  if (p.problem) badges.append(el("span", { class: "badge flag problem-flag", text: "⚠ problem" }));
  c.append(el("div", { class: "card-head" },
    el("div", { class: "card-title" },
      el("h3", { class: "name", text: p.name || p.printer, title: p.printer_id }),
      el("span", { class: "slug", text: p.printer })),
    badges));
  if (p.snapshot) c.append(el("img", { class: "snapshot", src: p.snapshot, alt: `Latest snapshot of ${p.name || p.printer}`, loading: "lazy" }));
  const pct = typeof p.progress === "number" ? p.progress : null;
  const fill = el("span");
  fill.style.width = `${pct ?? 0}%`;
  c.append(el("div", { class: "progress" },
    el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": pct ?? 0 }, fill),
    el("span", { class: "progress-value", text: pct === null ? "–" : `${pct}%` })));
  const facts = el("dl", { class: "facts" });
  const fact = (name, value, cls) => {
    if (value === null || value === undefined || value === "") return;
    facts.append(el("dt", { text: name }), el("dd", { class: cls, text: String(value), title: String(value) }));
  };
  fact("File", p.file, "file");
  const left = remaining(p);
  if (left !== null && left !== undefined) {
    fact("Remaining", duration(left), "remaining");
    if (p.eta) fact("ETA", localTime(p.eta), "eta");
  }
  if (p.layer && p.total_layers) fact("Layer", `${p.layer} / ${p.total_layers}`);
  const app = appConnections.get((p.printer_id || "").toLowerCase());
  if (app) {
    const look = APP_CONNECTION_LOOK[app.state] || "warn";
    facts.append(el("dt", { text: "App Connection" }),
      el("dd", { class: `app-connection ${look}`, "data-state": app.state, title: app.detail || app.state },
        el("span", { class: `dot ${look}` }), ` ${label(app.state)}`));
  }
  if (p.last_event) {
    const e = el("dd", { class: "last-event", "data-at": p.last_event.received_at });
    e.textContent = `${label(p.last_event.event)} · ${age(p.last_event.received_at)}`;
    facts.append(el("dt", { text: "Last event" }), e);
  }
  c.append(facts);
  if (p.error) c.append(el("p", { class: "error-text", text: p.error }));
  const links = el("div", { class: "links" });
  if (p.snapshot_url) links.append(el("a", { href: p.snapshot_url, target: "_blank", rel: "noreferrer noopener", text: "Snapshot ↗" }));
  if (p.quickview_url) links.append(el("a", { href: p.quickview_url, target: "_blank", rel: "noreferrer noopener", text: "Quick view ↗" }));
  if (links.childElementCount) c.append(links);
  return c;
}

function renderPrinters() {
  const box = $("printers");
  const list = [...printers.values()].sort((a, b) =>
    (a.name || a.printer).localeCompare(b.name || b.printer));
  box.replaceChildren(...list.map(card));
  $("no-printers").hidden = list.length > 0;
  $("printer-count").textContent = list.length ? `${list.length} known` : "";
  const select = $("test-printer");
  const chosen = select.value;
  const options = [el("option", { value: "", text: "print2mqtt-test (a test printer)" })];
  for (const p of list) options.push(el("option", { value: p.printer, text: `${p.name || p.printer} (${p.printer})` }));
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function upsertPrinter(p) {
  printers.set(p.printer, p);
  const old = document.querySelector(`.card[data-printer="${CSS.escape(p.printer)}"]`);
  if (old && printers.size === document.querySelectorAll(".card").length) {
    old.replaceWith(card(p));
  } else {
    renderPrinters();
  }
}

function logRow(e, fresh) {
  const code = el("span", { class: `code ${e.status === 200 ? "ok" : "bad"}`, text: String(e.status) });
  const answer = el("td", {}, code, e.outcome === "filtered" ? " filtered" : "");
  const sender = e.sender && e.peer && e.sender !== e.peer ? `${e.sender} via ${e.peer}` : (e.sender || "");
  return el("tr", { class: fresh ? "new" : null, "data-seq": e.seq },
    el("td", { text: localTime(e.time, true), title: e.time }),
    el("td", { text: sender }),
    el("td", { text: e.dialect || "–" }),
    el("td", { class: "printer", text: e.printer || "–", title: e.printer || null }),
    el("td", { text: e.event ? label(e.event) : "–" }),
    answer,
    el("td", { class: "reason", text: e.reason || "" }));
}

function renderLog() {
  $("log").replaceChildren(...logEntries.map((e) => logRow(e, false)));
  $("no-log").hidden = logEntries.length > 0;
  $("log-count").textContent = logEntries.length ? `last ${logEntries.length}` : "";
}

function addLog(e) {
  if (e.seq <= lastSeq) return;
  lastSeq = e.seq;
  logEntries.unshift(e);
  const body = $("log");
  body.prepend(logRow(e, true));
  while (logEntries.length > MAX_LOG) { logEntries.pop(); body.lastElementChild?.remove(); }
  $("no-log").hidden = true;
  $("log-count").textContent = `last ${logEntries.length}`;
}

function renderBridge() {
  if (!bridge) return;
  $("version").textContent = `v${bridge.version}`;
  const up = bridge.broker === "connected";
  $("broker").textContent = bridge.broker;
  $("broker-dot").className = `dot ${up ? "ok" : "bad"}`;
  const depth = bridge.outbox_depth;
  $("outbox").textContent = depth === 0 ? "empty" :
    `${depth}${bridge.oldest_age_secs ? ` (oldest ${duration(bridge.oldest_age_secs)})` : ""}`;
  $("uptime").textContent = duration((now() - Date.parse(bridge.started_at)) / 1000);
  const trouble = [];
  if (bridge.storage_fault) trouble.push(`Storage failing: ${bridge.storage_fault}`);
  if (bridge.parked) trouble.push(`${bridge.parked} message(s) the broker refused, set aside`);
  if (bridge.snapshots_dropped) trouble.push(`${bridge.snapshots_dropped} snapshot(s) too large for the broker left out`);
  $("delivery-trouble").textContent = trouble.join(" · ");
  $("delivery-trouble").hidden = trouble.length === 0;
}

function tick() {
  renderBridge();
  for (const dd of document.querySelectorAll(".last-event[data-at]")) {
    const slug = dd.closest(".card")?.dataset.printer;
    const p = printers.get(slug);
    if (p?.last_event) dd.textContent = `${label(p.last_event.event)} · ${age(p.last_event.received_at)}`;
  }
  for (const c of document.querySelectorAll(".card")) {
    const p = printers.get(c.dataset.printer);
    const r = c.querySelector(".remaining");
    const left = p && remaining(p);
    if (r && left !== null && left !== undefined) r.textContent = duration(left);
  }
}

function live(state, text) {
  document.body.dataset.live = state;
  $("live").textContent = text;
  $("live-dot").className = `dot ${state === "open" ? "ok" : state === "closed" ? "bad" : "warn"}`;
}

function connect() {
  const source = new EventSource("api/stream");
  const on = (name, fn) => source.addEventListener(name, (m) => fn(JSON.parse(m.data)));
  source.onopen = () => live("open", "Live");
  source.onerror = () => live(source.readyState === EventSource.CLOSED ? "closed" : "connecting",
    source.readyState === EventSource.CLOSED ? "Disconnected (reload the page)" : "Reconnecting…");
  on("printers", (list) => { printers.clear(); for (const p of list) printers.set(p.printer, p); renderPrinters(); });
  on("printer", upsertPrinter);
  on("removed", (r) => { printers.delete(r.printer); renderPrinters(); });
  on("events", (list) => { logEntries = list.slice(0, MAX_LOG); lastSeq = list.length ? list[0].seq : lastSeq; renderLog(); });
  on("webhook", addLog);
  on("bridge", (b) => { bridge = b; clockSkewMs = Date.parse(b.now) - Date.now(); renderBridge(); });
}

// The App Connection state of printers with an app_token; the page shows it
// on their cards. Polled: registrations change rarely (retries, renewals).
async function loadAppConnections() {
  try {
    const r = await fetch("api/appconnection", { headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const list = await r.json();
    appConnections = new Map(list.map((a) => [String(a.printer_id).toLowerCase(), a]));
    renderPrinters();
  } catch (_) { /* shown again at the next poll */ }
}

async function loadSetup() {
  try {
    const r = await fetch("api/setup", { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = await r.json();
    $("oe-url").textContent = s.octoeverywhere.url;
    $("oe-secret").textContent = s.octoeverywhere.secret;
    $("op-url").textContent = s.octoprint.url;
    $("op-template").textContent = s.octoprint.template;
    $("op-secret").textContent = s.octoprint.secret;
  } catch (e) {
    $("oe-url").textContent = `Could not load the setup: ${e.message}`;
  }
}

async function sendTest() {
  const button = $("test-button");
  const out = $("test-result");
  button.disabled = true;
  out.hidden = false;
  out.className = "result";
  out.textContent = "Sending…";
  try {
    const printer = $("test-printer").value;
    const r = await fetch("api/test", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(printer ? { printer } : {}),
    });
    const body = await r.json();
    if (!r.ok) {
      out.className = "result bad";
      out.textContent = `Failed (HTTP ${r.status}): ${body.error}`;
    } else {
      out.className = `result ${body.delivered ? "ok" : "warn"}`;
      out.dataset.status = body.status;
      out.textContent = `${body.delivered ? "✓" : "…"} ${body.message} Printer ${body.printer}, event id ${body.id}.`;
    }
  } catch (e) {
    out.className = "result bad";
    out.textContent = `Failed: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

function copy(id, button) {
  const text = $(id).textContent;
  const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => {});
    return;
  }
  const range = document.createRange();
  range.selectNodeContents($(id));
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
  try { if (document.execCommand("copy")) done(); } catch (_) { /* selected for manual copy */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("test-button").addEventListener("click", sendTest);
  for (const b of document.querySelectorAll("button.copy")) b.addEventListener("click", () => copy(b.dataset.copy, b));
  renderPrinters();
  renderLog();
  loadSetup();
  loadAppConnections();
  connect();
  setInterval(tick, 1000);
  setInterval(loadAppConnections, APP_CONNECTION_POLL_MS);
});
