// shopsense benchmarks: bench/results/*.json as plain SVG bar charts, one collapsible section per benchmark.
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

async function get(path) { const r = await fetch(path); if (!r.ok) throw new Error(r.statusText); return r.json(); }

// bench JSON: {"dataset": {"system": {"metric": value}}, "_meta": {...}}
async function refreshBench() {
  const all = await get("/bench/results");
  const box = $("#bench");
  box.replaceChildren();
  for (const [name, res] of Object.entries(all)) {
    const panel = el("details", { class: "panel", "data-bench": name }, el("summary", {}, el("b", {}, name)));
    const meta = res._meta || {};
    if (meta.date || meta.command) panel.append(el("div", { class: "meta" }, [meta.date, meta.machine, meta.command].filter(Boolean).join(" · ")));
    for (const [dataset, systems] of Object.entries(res)) {
      if (dataset.startsWith("_") || !systems || typeof systems !== "object") continue;
      const metrics = {};
      Object.entries(systems).forEach(([sys, vals], si) => {
        if (!vals || typeof vals !== "object") return;
        for (const [m, v] of Object.entries(vals)) if (typeof v === "number" && isFinite(v)) (metrics[m] = metrics[m] || []).push([sys, v, si]);
      });
      const charts = Object.entries(metrics).slice(0, 8).map(([m, rows]) => barChart(rows, `${dataset} · ${m}`));
      if (charts.length) panel.append(...charts);
    }
    box.append(panel);
  }
  if (!Object.keys(all).length) box.append(el("div", { class: "empty" }, "no benchmark results found"));
}

refreshBench().then(() => { const first = document.querySelector("#bench details"); if (first) first.open = true; })
  .catch((e) => { $("#bench").textContent = `bench results unavailable: ${e.message}`; });
