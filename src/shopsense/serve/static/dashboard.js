// shopsense system dashboard: counts, latency and model versions as plain SVG (nothing external);
// benchmark charts are on /benchmarks (benchmarks.js), the owner's figures on /console.
"use strict";
// $, el, svg, fmt, barChart, COLORS: charts.js

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
