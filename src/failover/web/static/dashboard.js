// The failover dashboard. Every name, model and error text from the server is put on the page
// with textContent (never innerHTML), so a platform called "<script>" shows as that text.
"use strict";

const HISTORY = 120; // points kept per pair for the charts (one a second: two minutes)
const COLORS = ["#4263eb", "#f76707", "#2f9e44", "#ae3ec9", "#1098ad", "#e03131", "#74b816", "#f59f00"];
const STATE_COLORS = { closed: "--closed", half_open: "--half_open", cooling: "--cooling", missing_key: "--missing_key", open: "--open" };
const COLUMNS = [
  ["#", "num"], ["platform", ""], ["model", "wide"], ["state", ""], ["requests", "num"],
  ["failures", "num"], ["p50", "num wide"], ["p95", "num"], ["cost", "num wide"], ["last error", "wide"],
];

const view = { firstPoint: Date.now() / 1000, admin: false, operations: new Map(), history: new Map(), snapshot: null, receivedAt: 0, feedSeq: 0 };

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? (value * 1000).toFixed(0) + " ms" : value.toFixed(2) + " s";
}

function left(value) {
  if (value === null || value === undefined) return "";
  if (value >= 120) return (value / 60).toFixed(1) + " min left";
  return Math.max(value, 0).toFixed(0) + " s left";
}

function stateLabel(row) {
  return { closed: "closed", half_open: "half-open", cooling: "cooling", missing_key: "missing key", open: "open" }[row.state] || row.state;
}

// -- the tables -----------------------------------------------------------------------------

function operationCard(name) {
  const card = el("article", { class: "operation", "data-operation": name });
  const title = el("h2", {}, name);
  const table = el("table");
  const head = el("tr");
  for (const [label, cls] of COLUMNS) head.append(el("th", { class: cls }, label));
  if (view.admin) head.append(el("th", { class: "admin" }, "actions"));
  table.append(el("thead"), el("tbody"));
  table.tHead.append(head);
  card.append(title, table);
  document.getElementById("operations").append(card);
  const entry = { card, body: table.tBodies[0], rows: new Map() };
  view.operations.set(name, entry);
  const option = el("option", { value: name }, name);
  document.getElementById("chart-operation").append(option);
  return entry;
}

function platformRow(entry, operation, row) {
  const tr = el("tr", { "data-platform": row.platform });
  const cells = {};
  for (const [label, cls] of COLUMNS) {
    const td = el("td", { class: cls });
    cells[label] = td;
    tr.append(td);
  }
  const badge = el("span", { class: "state" });
  const why = el("span", { class: "why" });
  cells.state.append(badge, why);
  cells.badge = badge;
  cells.why = why;
  if (view.admin) tr.append(adminCell(operation, row.platform));
  entry.body.append(tr);
  const item = { tr, cells };
  entry.rows.set(row.platform, item);
  return item;
}

function adminCell(operation, platform) {
  const td = el("td", { class: "admin" });
  for (const [action, label] of [["force-open", "open"], ["force-close", "close"], ["reset", "reset"]]) {
    const button = el("button", { type: "button", "data-action": action }, label);
    button.addEventListener("click", () => adminAction(action, platform, operation));
    td.append(button);
  }
  return td;
}

function renderOperations(snapshot) {
  for (const operation of snapshot.operations) {
    const entry = view.operations.get(operation.name) || operationCard(operation.name);
    entry.card.setAttribute("data-usable", String(operation.usable));
    let selected = false;
    operation.platforms.forEach((row, index) => {
      const item = entry.rows.get(row.platform) || platformRow(entry, operation.name, row);
      const c = item.cells;
      const first = row.usable && !selected;
      if (first) selected = true;
      item.tr.className = first ? "selected" : "";
      item.tr.setAttribute("data-state", row.state);
      setText(c["#"], String(index + 1));
      setText(c.platform, row.platform);
      setText(c.model, row.model);
      c.badge.setAttribute("data-state", row.state);
      setText(c.badge, stateLabel(row));
      setText(c.requests, String(row.requests));
      setText(c.failures, row.requests ? (row.failure_rate * 100).toFixed(1) + "%" : "–");
      setText(c.p50, seconds(row.p50));
      setText(c.p95, seconds(row.p95));
      setText(c.cost, row.cost ? row.cost.toFixed(4) : "–");
      setText(c["last error"], row.last_error_kind || "");
      if (entry.body.children[index] !== item.tr) entry.body.insertBefore(item.tr, entry.body.children[index] || null);
    });
  }
  updateCountdowns();
}

function updateCountdowns() {
  if (!view.snapshot) return;
  const elapsed = Date.now() / 1000 - view.receivedAt;
  for (const operation of view.snapshot.operations) {
    const entry = view.operations.get(operation.name);
    for (const row of operation.platforms) {
      const item = entry && entry.rows.get(row.platform);
      if (!item) continue;
      const parts = [];
      if (row.reason && row.state !== "missing_key") parts.push(row.reason);
      if (row.seconds_left !== null) parts.push(left(row.seconds_left - elapsed));
      setText(item.cells.why, parts.join(", "));
    }
  }
}

function renderHeader(snapshot) {
  const overall = document.getElementById("overall");
  overall.setAttribute("data-ok", String(snapshot.ok));
  setText(overall, snapshot.ok ? "every operation has a usable platform" : "an operation has no usable platform");
  setText(document.getElementById("updated"), "updated " + new Date(snapshot.time * 1000).toLocaleTimeString());
}

// -- the charts -----------------------------------------------------------------------------

function remember(snapshot, now) {
  for (const operation of snapshot.operations) {
    for (const row of operation.platforms) {
      const key = operation.name + "\u0000" + row.platform;
      let points = view.history.get(key);
      if (!points) view.history.set(key, (points = []));
      points.push({ t: now, requests: row.requests, failures: row.failures, p95: row.p95, state: row.state });
      if (points.length > HISTORY) points.shift();
    }
  }
}

function series(points, pick) {
  const out = [];
  for (let i = 1; i < points.length; i++) out.push({ t: points[i].t, v: pick(points[i - 1], points[i]) });
  return out;
}

// The charts fill their width from the first point on, up to HISTORY seconds.
function chartSpan(now) {
  return Math.min(HISTORY, Math.max(10, now - view.firstPoint));
}

function lineChart(svg, lines, fixedMax) {
  svg.replaceChildren();
  const width = svg.clientWidth || 300, height = svg.clientHeight || 140, pad = 28;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const now = Date.now() / 1000, span = chartSpan(now);
  let max = fixedMax || 0;
  if (!fixedMax) for (const line of lines) for (const p of line.points) max = Math.max(max, p.v || 0);
  max = max || 1;
  svg.append(svgEl("line", { class: "axis", x1: pad, y1: height - 14, x2: width, y2: height - 14 }));
  const label = svgEl("text", { x: 0, y: 10 });
  label.textContent = max < 10 ? max.toFixed(2) : max.toFixed(0);
  svg.append(label);
  for (const line of lines) {
    const coords = line.points.map((p) => {
      const x = pad + ((p.t - (now - span)) / span) * (width - pad);
      const y = height - 14 - ((p.v || 0) / max) * (height - 24);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    svg.append(svgEl("polyline", { points: coords.join(" "), stroke: line.color }));
  }
}

function timeline(svg, rows) {
  svg.replaceChildren();
  const width = svg.clientWidth || 300, height = svg.clientHeight || 140, pad = 28;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const now = Date.now() / 1000, span = chartSpan(now);
  const band = Math.min(18, (height - 14) / Math.max(rows.length, 1));
  const style = getComputedStyle(document.documentElement);
  rows.forEach((row, index) => {
    const y = index * band;
    for (let i = 0; i < row.points.length; i++) {
      const p = row.points[i], next = row.points[i + 1];
      const x1 = pad + ((p.t - (now - span)) / span) * (width - pad);
      const x2 = next ? pad + ((next.t - (now - span)) / span) * (width - pad) : width;
      const color = style.getPropertyValue(STATE_COLORS[p.state] || "--missing_key").trim();
      svg.append(svgEl("rect", { x: Math.max(x1, pad), y: y + 1, width: Math.max(x2 - Math.max(x1, pad), 0), height: band - 2, fill: color }));
    }
    const label = svgEl("text", { x: 0, y: y + band - 5 });
    label.textContent = row.name.slice(0, 5);
    svg.append(label);
  });
}

function renderCharts() {
  const operation = document.getElementById("chart-operation").value;
  const current = view.snapshot && view.snapshot.operations.find((item) => item.name === operation);
  if (!current) return;
  const rows = current.platforms.slice(0, COLORS.length).map((row, index) => ({
    name: row.platform, color: COLORS[index], points: view.history.get(operation + "\u0000" + row.platform) || [],
  }));
  const rate = (a, b) => (b.requests - a.requests) / Math.max(b.t - a.t, 0.001);
  const failures = (a, b) => (b.requests > a.requests ? (b.failures - a.failures) / (b.requests - a.requests) : 0);
  lineChart(document.getElementById("chart-rps"), rows.map((r) => ({ color: r.color, points: series(r.points, rate) })));
  lineChart(document.getElementById("chart-failures"), rows.map((r) => ({ color: r.color, points: series(r.points, failures) })), 1);
  lineChart(document.getElementById("chart-latency"), rows.map((r) => ({ color: r.color, points: r.points.map((p) => ({ t: p.t, v: p.p95 })) })));
  timeline(document.getElementById("chart-states"), rows);
  const legend = document.getElementById("legend");
  legend.replaceChildren(...rows.map((r) => {
    const item = el("span");
    item.append(el("span", { class: "swatch" }), r.name);
    item.firstChild.style.background = r.color;
    return item;
  }));
}

// -- the feed -------------------------------------------------------------------------------

function renderFeed(lines) {
  const list = document.getElementById("feed");
  for (const line of lines) {
    if (line.seq <= view.feedSeq) continue;
    view.feedSeq = line.seq;
    const item = el("li", { "data-level": line.level });
    item.append(el("time", {}, new Date(line.time * 1000).toLocaleTimeString()), document.createTextNode(line.text));
    item.hidden = line.level === "debug" && !document.getElementById("show-completed").checked;
    list.prepend(item);
  }
  while (list.children.length > 300) list.lastChild.remove();
}

// -- admin ----------------------------------------------------------------------------------

function adminToken() {
  let token = sessionStorage.getItem("failover-admin-token");
  if (!token) {
    token = window.prompt("Admin token");
    if (token) sessionStorage.setItem("failover-admin-token", token);
  }
  return token;
}

async function adminAction(action, platform, operation) {
  const token = adminToken();
  if (!token) return;
  const response = await fetch("admin/" + action, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + token },
    body: JSON.stringify({ platform, operation }),
  });
  if (response.status === 401) sessionStorage.removeItem("failover-admin-token");
  if (!response.ok) window.alert((await response.json()).error || response.statusText);
}

// -- wiring ---------------------------------------------------------------------------------

function apply(snapshot, lines) {
  view.snapshot = snapshot;
  view.receivedAt = Date.now() / 1000;
  renderHeader(snapshot);
  renderOperations(snapshot);
  renderFeed(lines);
}

async function start() {
  const response = await fetch("api/state", { cache: "no-store" });
  const state = await response.json();
  view.admin = state.admin;
  setText(document.getElementById("title"), state.title);
  document.title = state.title + " dashboard";
  apply(state.snapshot, state.feed);
  remember(state.snapshot, Date.now() / 1000);
  renderCharts();
  const source = new EventSource("events?since=" + view.feedSeq);
  source.addEventListener("state", (event) => {
    const message = JSON.parse(event.data);
    apply(message.snapshot, message.feed);
  });
  source.addEventListener("error", () => {
    document.getElementById("overall").setAttribute("data-ok", "unknown");
  });
  // A point a second whether or not anything changed, so the charts move on in quiet times.
  setInterval(() => {
    if (view.snapshot) remember(view.snapshot, Date.now() / 1000);
    updateCountdowns();
    renderCharts();
  }, 1000);
  document.getElementById("chart-operation").addEventListener("change", renderCharts);
  document.getElementById("show-completed").addEventListener("change", (event) => {
    for (const item of document.querySelectorAll("#feed li[data-level=debug]")) item.hidden = !event.target.checked;
  });
}

document.addEventListener("DOMContentLoaded", start);
