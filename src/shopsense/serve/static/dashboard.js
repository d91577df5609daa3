// shopsense system dashboard: counts, latency and model versions as plain SVG (nothing external);
// benchmark charts are on /benchmarks (benchmarks.js), the owner's figures on /console.
"use strict";
const $ = (s) => document.querySelector(s);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#0b6e4f", "#2a6f97", "#c05621", "#7b2cbf", "#9b2c2c", "#b7791f", "#4a5568", "#2f855a"];

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
  return e;
}
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const fmt = (v) => (typeof v !== "number" ? String(v) : Number.isInteger(v) || Math.abs(v) >= 1000 ? v.toLocaleString(undefined, { maximumFractionDigits: 0 })
  : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));

// horizontal bars: rows = [[label, value, colorIndex]]
function barChart(rows, title) {
  const w = 560, rowH = 18, left = 190, top = title ? 20 : 4;
  const max = Math.max(...rows.map((r) => r[1]), 1e-12);
  const s = svg("svg", { width: w, height: top + rows.length * rowH + 6, role: "img", "aria-label": title || "chart" });
  if (title) s.append(svg("text", { x: 0, y: 13, "font-weight": "600" }, title));
  rows.forEach(([label, v, c], i) => {
    const y = top + i * rowH;
    s.append(svg("text", { x: left - 6, y: y + 12, "text-anchor": "end" }, String(label).slice(0, 32)));
    const bw = Math.max(1, (w - left - 70) * (v / max));
    s.append(svg("rect", { x: left, y: y + 2, width: bw, height: rowH - 5, fill: COLORS[(c || 0) % COLORS.length], rx: 2 }));
    s.append(svg("text", { x: left + bw + 4, y: y + 12 }, fmt(v)));
  });
  return s;
}

function table(rows, cols) {
  return el("table", {}, el("tr", {}, cols.map((c) => el("th", {}, c))),
    rows.map((r) => el("tr", {}, r.map((x) => el("td", {}, x === null || x === undefined ? "" : fmt(x))))));
}

async function get(path) { const r = await fetch(path); if (!r.ok) throw new Error(r.statusText); return r.json(); }

async function refreshStats() {
  const s = await get("/stats");
  const byType = s.events_by_type || {};
  $("#counts").replaceChildren(
    ...[["products", s.products], ["events", s.events], ...Object.entries(byType)].map(([l, v]) =>
      el("div", { class: "stat", "data-stat": l }, el("div", { class: "v" }, fmt(v)), el("div", { class: "l" }, l))));
  $("#events-chart").replaceChildren(barChart(Object.entries(byType).map(([k, v], i) => [k, v, i])));
  const lat = Object.entries(s.latency || {}).sort((a, b) => b[1].count - a[1].count);
  $("#latency").replaceChildren(
    lat.length ? barChart(lat.map(([r, d]) => [r, d.mean_ms, 1]), "mean latency (ms) per route") : el("div", { class: "empty" }, "no requests yet"),
    table(lat.map(([r, d]) => [r, d.count, d.mean_ms, d.p50_ms_le, d.p99_ms_le]), ["route", "requests", "mean ms", "p50 ≤ ms", "p99 ≤ ms"]));
  const models = Object.entries(s.models || {});
  $("#models").replaceChildren(models.length
    ? table(models.map(([name, m]) => [name, m.version || m.format || "", m.built_at || m.created_at || m.time || "",
      m.model || m.encoder_model || m.encoder || ""]), ["component", "version", "built", "model"])
    : el("div", { class: "empty" }, "nothing built yet (run shopsense index / train)"));
}

async function tick() {
  try { await refreshStats(); } catch (e) { $("#counts").replaceChildren(el("div", { class: "empty" }, `stats unavailable: ${e.message}`)); }
}
tick();
setInterval(tick, 5000);
