// shopsense benchmarks: bench/results/*.json as plain SVG bar charts, one collapsible section per benchmark.
"use strict";
// $, el, svg, fmt, barChart, COLORS: charts.js

async function get(path) { const r = await fetch(path); if (!r.ok) throw new Error(r.statusText); return r.json(); }

// bench JSON: {"dataset": {"system": {"metric": value}}, "_meta": {...}}
async function refreshBench() {
  const all = await get("/bench/results");
  const box = $("#bench");
  box.replaceChildren();
  for (const [name, res] of Object.entries(all)) {
    const panel = el("details", { class: "panel", "data-bench": name }, el("summary", {}, el("b", {}, name)));
    const meta = res._meta || {};
    // machine is a line of text in most results and an object ({python, cpus, ...}) in some
    const machine = meta.machine && typeof meta.machine === "object"
      ? Object.entries(meta.machine).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join("/") : v}`).join(", ") : meta.machine;
    if (meta.date || meta.command) panel.append(el("div", { class: "meta" }, [meta.date, machine, meta.command].filter(Boolean).join(" · ")));
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
