// shopsense charts shared by the dashboard and the benchmarks page: tiny DOM and SVG helpers
// and horizontal bar charts, plain SVG (nothing loaded from outside this server).
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
  const height = top + rows.length * rowH + 6;
  // drawn 560 wide, scaled down to the column on a phone (the viewBox keeps the proportions)
  const s = svg("svg", { width: w, height, viewBox: `0 0 ${w} ${height}`, style: "max-width: 100%; height: auto",
    role: "img", "aria-label": title || "chart" });
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
