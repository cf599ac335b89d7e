// corral's web page: the status table and the program page.
// Hand-written, no dependencies; everything it needs comes from this server.
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function showMessage(text, error) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.classList.toggle("error", !!error);
}

function setConnected(live) {
  const c = document.getElementById("conn");
  c.textContent = live ? "live" : "reconnecting…";
  c.classList.toggle("live", live);
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function fmtCpu(c) {
  return c === null || c === undefined ? "–" : c.toFixed(1) + " %";
}

function fmtUptime(s) {
  if (s === null || s === undefined) return "–";
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, sec = s % 60;
  const hms = [h, m, sec].map((x) => String(x).padStart(2, "0")).join(":");
  return d > 0 ? d + "d " + hms : hms;
}

// Actions are POSTs carrying the page's CSRF token (see src/web/csrf.rs).
async function act(action, name, button) {
  if (button) button.disabled = true;
  const body = new URLSearchParams({ action });
  if (name) body.set("name", name);
  try {
    const r = await fetch("/api/action", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken, "Accept": "application/json" },
      body,
    });
    const out = await r.json().catch(() => ({ ok: false, message: "HTTP " + r.status }));
    showMessage(out.message, !out.ok);
  } catch (e) {
    showMessage("request failed: " + e, true);
  } finally {
    if (button) button.disabled = false;
  }
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  ev.preventDefault();
  act(b.dataset.action, b.dataset.name, b);
});

// Which actions make sense in which state (supervisord's web UI rules).
const STOPPED = ["STOPPED", "EXITED", "FATAL", "UNKNOWN"];
const STOPPABLE = ["RUNNING", "STARTING", "BACKOFF"];

function programHref(ns) {
  return "/program/" + encodeURIComponent(ns);
}

// ---- status page ------------------------------------------------------------

function actionCell(p) {
  const td = el("td", { class: "actions" });
  const button = (action, label, enabled) => {
    const b = el("button", { type: "button", "data-action": action, "data-name": p.namespec }, label);
    b.disabled = !enabled;
    return b;
  };
  td.append(
    button("start", "Start", STOPPED.includes(p.state)),
    button("stop", "Stop", STOPPABLE.includes(p.state)),
    button("restart", "Restart", true),
    button("clearlog", "Clear log", true),
    el("a", { href: programHref(p.namespec), class: "tail" }, "Tail"),
  );
  return td;
}

function renderRow(row, p) {
  const cells = [
    el("td", {}, el("span", { class: "state state-" + p.state }, p.state)),
    el("td", { class: "name" }, el("a", { href: programHref(p.namespec) }, p.namespec)),
    el("td", { class: "desc" }, p.description),
    el("td", { class: "num" }, p.pid ? String(p.pid) : "–"),
    el("td", { class: "num" }, fmtUptime(p.uptime)),
    el("td", { class: "num" }, fmtCpu(p.cpu)),
    el("td", { class: "num" }, fmtBytes(p.mem)),
    el("td", { class: "num" }, String(p.restarts)),
  ];
  // Keep the action cell (and the button under the pointer) unless the state changed.
  if (row.dataset.state !== p.state || !row.lastElementChild) {
    row.replaceChildren(...cells, actionCell(p));
  } else {
    const actions = row.lastElementChild;
    row.replaceChildren(...cells, actions);
  }
  row.dataset.state = p.state;
}

function renderStatus(view) {
  const tbody = document.querySelector("#processes tbody");
  const rows = new Map([...tbody.rows].map((r) => [r.dataset.namespec, r]));
  const order = [];
  for (const p of view.processes) {
    let row = rows.get(p.namespec);
    if (!row) row = el("tr", { "data-namespec": p.namespec });
    rows.delete(p.namespec);
    renderRow(row, p);
    order.push(row);
  }
  for (const gone of rows.values()) gone.remove();
  order.forEach((r) => tbody.append(r));
  document.getElementById("empty").hidden = view.processes.length > 0;
  document.body.dataset.updated = String(Date.now());
}

function statusPage() {
  // EventSource reconnects by itself; the stream sends a full snapshot first.
  const events = new EventSource("/api/events");
  events.addEventListener("status", (e) => {
    setConnected(true);
    renderStatus(JSON.parse(e.data));
  });
  events.onerror = () => setConnected(false);
}

// ---- program page -----------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// A line chart of one series; gaps (null) split the line.
function drawChart(svg, samples, key, cls, fmt, minMax) {
  const W = 600, H = 160, left = 58, top = 8, bottom = 18;
  svg.replaceChildren();
  const values = samples.map((s) => s[key]).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(minMax, ...values) * 1.1);
  const t1 = samples.length ? samples[samples.length - 1].t : Date.now();
  const t0 = Math.min(samples.length ? samples[0].t : t1, t1 - 60000);
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (W - left - 4);
  const y = (v) => top + (1 - v / max) * (H - top - bottom);
  for (const f of [0, 0.5, 1]) {
    svg.append(svgEl("line", { class: "grid", x1: left, x2: W, y1: y(max * f), y2: y(max * f) }));
    const label = svgEl("text", { class: "axis", x: left - 6, y: y(max * f) + 4, "text-anchor": "end" });
    label.textContent = fmt(max * f);
    svg.append(label);
  }
  const span = svgEl("text", { class: "axis", x: left, y: H - 3 });
  span.textContent = "last " + Math.round((t1 - t0) / 60000 * 10) / 10 + " min";
  svg.append(span);
  let points = [];
  const flush = () => {
    // A lone sample gets a short stroke so it is visible at all.
    if (points.length === 1) points.unshift([points[0][0] - 6, points[0][1]]);
    if (points.length) {
      const text = points.map(([px, py]) => px.toFixed(1) + "," + py.toFixed(1)).join(" ");
      svg.append(svgEl("polyline", { class: "series " + cls, points: text }));
    }
    points = [];
  };
  for (const s of samples) {
    const v = s[key];
    if (v === null || v === undefined) { flush(); continue; }
    points.push([x(s.t), y(v)]);
  }
  flush();
}

function renderProgram(view) {
  const p = view.process;
  const state = document.getElementById("state");
  state.textContent = p.state;
  state.className = "state state-" + p.state;
  document.getElementById("description").textContent = p.description;
  document.querySelector('button[data-action="start"]').disabled = !STOPPED.includes(p.state);
  document.querySelector('button[data-action="stop"]').disabled = !STOPPABLE.includes(p.state);
  document.getElementById("cpu-now").textContent = fmtCpu(p.cpu);
  document.getElementById("mem-now").textContent = fmtBytes(p.mem);
  drawChart(document.getElementById("cpu-chart"), view.samples, "cpu", "cpu", (v) => v.toFixed(v < 10 ? 1 : 0) + "%", 1);
  drawChart(document.getElementById("mem-chart"), view.samples, "mem", "mem", fmtBytes, 1024 * 1024);
}

async function pollProgram(ns) {
  let delay = 2000;
  try {
    const r = await fetch("/api/program/" + encodeURIComponent(ns), { credentials: "same-origin" });
    if (r.ok) {
      const view = await r.json();
      delay = view.interval_ms || delay;
      renderProgram(view);
      setConnected(true);
    } else {
      setConnected(false);
    }
  } catch (e) {
    setConnected(false);
  }
  setTimeout(() => pollProgram(ns), delay);
}

// Follow supervisord's /logtail stream; keep the last 256 KiB on screen.
async function tail(pre, ns) {
  const channel = pre.dataset.channel;
  const url = "/logtail/" + encodeURIComponent(ns) + (channel === "stderr" ? "/stderr" : "");
  const limit = 256 * 1024;
  try {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 404) {
      pre.textContent = "(no log file)";
      setTimeout(() => tail(pre, ns), 5000);
      return;
    }
    pre.textContent = "";
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      let text = pre.textContent + decoder.decode(value, { stream: true });
      if (text.length > limit) text = text.slice(text.length - limit);
      pre.textContent = text;
      if (stick) pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) {
    // Connection lost: try again below.
  }
  setTimeout(() => tail(pre, ns), 2000);
}

function programPage() {
  const ns = document.body.dataset.namespec;
  pollProgram(ns);
  document.querySelectorAll("pre[data-channel]").forEach((pre) => tail(pre, ns));
}

if (document.body.dataset.page === "status") statusPage();
else if (document.body.dataset.page === "program") programPage();
