// shopsense owner's console: analytics, experiments, merchandising, privacy.
// Plain DOM and SVG, nothing external. Every call sends the admin key (X-API-Key).
"use strict";
const $ = (s, root = document) => root.querySelector(s);
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#0b6e4f", "#2a6f97", "#c05621", "#7b2cbf", "#9b2c2c", "#b7791f"];
const KEY_STORE = "shopsense-admin-key";
// charts are drawn at a fixed size and scaled down to the column on a phone (viewBox)
const FIT = "max-width: 100%; height: auto";

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const fmt = (v, kind) => {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v !== "number") return Array.isArray(v) ? v.join(", ") : String(v);
  if (kind === "pct") return (100 * v).toFixed(v < 0.1 ? 2 : 1) + "%";
  if (kind === "money") return v.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  if (Number.isInteger(v)) return v.toLocaleString();
  return Math.abs(v) >= 100 ? v.toLocaleString(undefined, { maximumFractionDigits: 0 }) : v.toFixed(2);
};

// -- key, range, API ---------------------------------------------------------------------------
const state = { key: localStorage.getItem(KEY_STORE) || "", since: "", until: "" };

function notice(msg, ok = false) {
  const n = $("#notice");
  n.textContent = msg; n.hidden = !msg; n.className = ok ? "notice ok" : "notice";
  if (ok) setTimeout(() => { if (n.textContent === msg) n.hidden = true; }, 3000);
}

async function api(path, opts = {}) {
  const headers = { "X-API-Key": state.key, ...(opts.body ? { "Content-Type": "application/json" } : {}) };
  const r = await fetch(path, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
  if (!r.ok) {
    let msg = r.statusText;
    try { const j = await r.json(); msg = j.message || JSON.stringify(j.detail || j); } catch (_) { /* not JSON */ }
    if (r.status === 401 || r.status === 403) msg += " (enter an admin key with the write role above)";
    throw new Error(msg);
  }
  const type = r.headers.get("content-type") || "";
  return type.includes("json") ? r.json() : r.text();
}

function rangeQuery(extra = {}) {
  const p = new URLSearchParams(extra);
  if (state.since) p.set("since", state.since);
  if (state.until) p.set("until", state.until);
  return p.toString();
}
const table$ = (name, extra = {}) => api(`/analytics/${name}?${rangeQuery(extra)}`).then((j) => j.rows);

function setRange(days) {
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  state.until = days ? iso(today) : "";
  state.since = days ? iso(new Date(today.getTime() - (days - 1) * 86400000)) : "";
  $("#since").value = state.since; $("#until").value = state.until;
}

async function download(name) {
  const text = await api(`/analytics/${name}?${rangeQuery({ format: "csv", limit: 1000 })}`);
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `${name}.csv` });
  document.body.append(a); a.click(); a.remove();
}

// -- charts -----------------------------------------------------------------------------------------
// log scale when the positive values span two orders of magnitude or more
function wantsLog(values) {
  const pos = values.filter((v) => v > 0);
  return pos.length > 1 && Math.max(...pos) / Math.min(...pos) >= 100;
}
function scaleY(values, h, log) {
  const raw = Math.max(1e-9, ...values);
  if (!log) {
    // round ticks: 1, 2 or 5 times a power of ten, about four of them
    const mag = Math.pow(10, Math.floor(Math.log10(raw / 4)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => raw / st <= 4) || 10 * mag;
    const max = Math.ceil(raw / step) * step;
    const ticks = [];
    for (let t = 0; t <= max + step / 2; t += step) ticks.push(t);
    return { f: (v) => h - (v / max) * h, ticks };
  }
  const max = raw;
  const top = Math.pow(10, Math.ceil(Math.log10(max)));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(1e-9, Math.min(...values.filter((v) => v > 0))))));
  const span = Math.log10(top) - Math.log10(lo) || 1;
  const ticks = [];
  for (let t = lo; t <= top * 1.0001; t *= 10) ticks.push(t);
  return { f: (v) => (v <= 0 ? h : h - ((Math.log10(v) - Math.log10(lo)) / span) * h), ticks };
}

// series: [{name, points: [[label, value]]}] over the same labels (days)
function lineChart(title, series, { kind } = {}) {
  const w = 600, h = 200, left = 56, top = 26, bottom = 34;
  const labels = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort();
  const all = series.flatMap((s) => s.points.map((p) => p[1]));
  const log = wantsLog(all);
  const { f, ticks } = scaleY(all, h, log);
  const x = (i) => left + 10 + (labels.length > 1 ? (i / (labels.length - 1)) * (w - left - 40) : (w - left) / 2);
  const s = svg("svg", { width: w, height: h + top + bottom, viewBox: `0 0 ${w} ${h + top + bottom}`, style: FIT,
    role: "img", "aria-label": title, "data-chart": title, "data-log": log });
  s.append(svg("text", { x: 0, y: 14, "font-weight": "600" }, title + (log ? " (log scale)" : "")));
  for (const t of ticks) {
    const y = top + f(t);
    s.append(svg("line", { x1: left, x2: w, y1: y, y2: y, class: "grid" }));
    s.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmt(t, kind === "money" ? "money" : undefined)));
  }
  const step = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((l, i) => { if (i % step === 0 || i === labels.length - 1) s.append(svg("text", { x: x(i), y: top + h + 16, "text-anchor": "middle" }, l.slice(5))); });
  series.forEach((ser, si) => {
    const byLabel = Object.fromEntries(ser.points);
    const pts = labels.map((l, i) => [x(i), top + f(byLabel[l] || 0)]);
    s.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: COLORS[si % COLORS.length], "stroke-width": 2 }));
    pts.forEach(([px, py], i) => s.append(svg("circle", { cx: px, cy: py, r: 2.5, fill: COLORS[si % COLORS.length] }, undefined)));
    // the legend's bullet in the line's colour (an inline style: the stylesheet sets every svg text's fill)
    const key = svg("text", { x: left + 8 + si * 130, y: top + h + 30 });
    key.append(svg("tspan", { style: `fill: ${COLORS[si % COLORS.length]}` }, "● "), ser.name);
    s.append(key);
  });
  return s;
}

// rows: [[label, value]]; horizontal bars
function barChart(title, rows, { kind } = {}) {
  const w = 600, rowH = 20, left = 170, top = 22;
  const vals = rows.map((r) => r[1] || 0);
  const log = wantsLog(vals);
  const max = Math.max(1e-12, ...vals);
  const lo = log ? Math.min(...vals.filter((v) => v > 0)) / 2 : 0;
  const len = (v) => {
    if (v <= 0) return 0;
    return log ? ((Math.log10(v) - Math.log10(lo)) / (Math.log10(max) - Math.log10(lo))) * (w - left - 80) : (v / max) * (w - left - 80);
  };
  const s = svg("svg", { width: w, height: top + rows.length * rowH + 6, viewBox: `0 0 ${w} ${top + rows.length * rowH + 6}`,
    style: FIT, role: "img", "aria-label": title, "data-chart": title, "data-log": log });
  s.append(svg("text", { x: 0, y: 14, "font-weight": "600" }, title + (log ? " (log scale)" : "")));
  rows.forEach(([label, v], i) => {
    const y = top + i * rowH;
    s.append(svg("text", { x: left - 6, y: y + 13, "text-anchor": "end" }, String(label).slice(0, 26)));
    const bw = Math.max(1, len(v || 0));
    s.append(svg("rect", { x: left, y: y + 3, width: bw, height: rowH - 7, fill: COLORS[0], rx: 2 }));
    s.append(svg("text", { x: left + bw + 5, y: y + 13 }, fmt(v, kind)));
  });
  return s;
}

// -- sortable tables --------------------------------------------------------------------------------------
// cols: [[key, label, kind]]; kind: "pct" | "money" | undefined
function sortable(rows, cols, { id, empty } = {}) {
  if (!rows.length) return el("div", { class: "empty", id }, empty || "nothing in this range");
  let sortKey = null, dir = "desc";
  const tbody = el("tbody");
  const numeric = (k) => rows.some((r) => typeof r[k] === "number");
  const head = el("tr", {}, cols.map(([k, label]) => el("th", { "data-key": k, style: numeric(k) ? "text-align:right" : null, onclick: () => sortBy(k) }, label)));
  const t = el("table", { id, class: "sortable" }, el("thead", {}, head), tbody);
  function render() {
    tbody.replaceChildren(...rows.map((r) => el("tr", {}, cols.map(([k, , kind]) =>
      el("td", { class: typeof r[k] === "number" ? "num" : "" }, typeof kind === "function" ? kind(r) : fmt(r[k], kind))))));
  }
  function sortBy(k) {
    dir = sortKey === k && dir === "desc" ? "asc" : "desc";
    sortKey = k;
    const sign = dir === "asc" ? 1 : -1;
    rows = [...rows].sort((a, b) => {
      const x = a[k], y = b[k];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sign;
    });
    head.querySelectorAll("th").forEach((th) => th.removeAttribute("data-dir"));
    head.querySelector(`th[data-key="${k}"]`).setAttribute("data-dir", dir);
    render();
  }
  render();
  return t;
}

function panel(title, body, { csv, meta } = {}) {
  return el("div", { class: "panel", "data-panel": title },
    el("div", { class: "head" }, el("h3", {}, title), meta ? el("span", { class: "meta" }, meta) : null,
      csv ? el("button", { type: "button", class: "meta", onclick: () => download(csv).catch((e) => notice(e.message)) }, "CSV") : null),
    body);
}

// -- pages ----------------------------------------------------------------------------------------------------
const pages = {
  async overview(root) {
    const [sum, daily] = await Promise.all([api(`/analytics/summary?${rangeQuery()}`), table$("daily")]);
    const cards = [["searches", sum.searches], ["zero-result searches", sum.zero_result_searches], ["sessions", sum.sessions],
      ["clicks", sum.clicks], ["purchases", sum.purchases], ["revenue", fmt(sum.revenue, "money")]];
    root.append(el("div", { class: "cards" }, cards.map(([l, v]) => el("div", { class: "stat", "data-stat": l }, el("div", { class: "v" }, typeof v === "number" ? fmt(v) : v), el("div", { class: "l" }, l)))));
    const pts = (k) => daily.map((d) => [d.day, d[k]]);
    root.append(el("div", { class: "grid2" },
      panel("Traffic per day", lineChart("searches, sessions and clicks per day", [{ name: "searches", points: pts("searches") }, { name: "sessions", points: pts("sessions") }, { name: "clicks", points: pts("clicks") }]), { csv: "daily" }),
      panel("Sales per day", lineChart("revenue per day", [{ name: "revenue", points: pts("revenue") }], { kind: "money" }))));
    root.append(panel("Days", sortable(daily, [["day", "day"], ["searches", "searches"], ["zero_results", "zero results"], ["sessions", "sessions"], ["impressions", "lists shown"], ["clicks", "clicks"], ["add_to_carts", "add to cart"], ["purchases", "purchases"], ["revenue", "revenue", "money"]], { id: "daily-table" }), { csv: "daily" }));
  },

  async search(root) {
    const [top, zero, low] = await Promise.all([table$("top-queries", { limit: 50 }), table$("zero-results", { limit: 50 }), table$("low-click", { limit: 50 })]);
    const qcols = [["query", "query"], ["searches", "searches"], ["users", "shoppers"], ["ctr", "click-through", "pct"], ["mean_click_position", "mean click position"], ["last_seen", "last seen"]];
    root.append(el("div", { class: "grid2" },
      panel("Top queries", barChart("searches per query", top.slice(0, 12).map((r) => [r.query, r.searches]))),
      panel("Searches that found nothing", zero.length ? barChart("zero-result searches", zero.slice(0, 12).map((r) => [r.query, r.zero_results])) : el("div", { class: "empty" }, "every search found something"))));
    root.append(panel("Top queries", sortable(top, qcols, { id: "top-queries" }), { csv: "top-queries" }));
    root.append(panel("Zero-result queries, with what the engine understood", sortable(zero, [["query", "query"], ["zero_results", "searches without results"], ["users", "shoppers"], ["understood", "understood as"], ["last_seen", "last seen"]], { id: "zero-results" }), { csv: "zero-results", meta: "add a synonym or a product for these" }));
    root.append(panel("Queries with results but few clicks", sortable(low, [...qcols.slice(0, 4), ["understood", "understood as"]], { id: "low-click" }), { csv: "low-click" }));
  },

  async recs(root) {
    const [surf, pos] = await Promise.all([table$("surfaces"), table$("positions")]);
    root.append(el("div", { class: "grid2" },
      panel("Click-through per surface", barChart("share of lists with a click", surf.filter((s) => s.impressions).map((s) => [s.surface, s.ctr || 0]), { kind: "pct" })),
      panel("Click-through per position", barChart("click-through by position (all surfaces)", pos.map((p) => ["position " + p.position, p.ctr || 0]), { kind: "pct" }))));
    root.append(panel("Surfaces", sortable(surf, [["surface", "surface"], ["impressions", "lists shown"], ["clicks", "clicks"], ["ctr", "click-through", "pct"], ["add_to_cart_rate", "add-to-cart rate", "pct"], ["conversion_rate", "conversion", "pct"], ["revenue", "attributed revenue", "money"]], { id: "surfaces" }), { csv: "surfaces" }));
    root.append(panel("Positions", sortable(pos, [["position", "position"], ["shown", "shown"], ["clicks", "clicks"], ["ctr", "click-through", "pct"], ["add_to_carts", "add to cart"], ["purchases", "purchases"]], { id: "positions" }), { csv: "positions" }));
  },

  async revenue(root) {
    const rev = await table$("revenue");
    root.append(panel("Revenue by where it came from", barChart("revenue per surface (last touch in the session)", rev.map((r) => [r.surface, r.revenue]), { kind: "money" })));
    root.append(panel("Attribution", sortable(rev, [["surface", "surface"], ["purchases", "purchases"], ["revenue", "revenue", "money"], ["share", "share", "pct"]], { id: "revenue" }), { csv: "revenue", meta: "a purchase counts for the last list its item was clicked or carted from in the same session" }));
  },

  async catalogue(root) {
    const rows = await table$("catalogue");
    root.append(panel("Catalogue health", barChart("products per problem", rows.map((r) => [r.check, r.count]))));
    root.append(panel("Checks", sortable(rows, [["check", "check"], ["count", "products"], ["share", "share", "pct"], ["examples", "examples"]], { id: "catalogue" }), { csv: "catalogue" }));
  },

  async experiments(root) {
    const { experiments } = await api("/experiments");
    const report = el("div", { id: "exp-report" });
    const list = experiments.length ? sortable(experiments.map((e) => ({ ...e, variants_: e.variants.map((v) => v.name + (Object.keys(v.search).length ? " " + JSON.stringify(v.search) : "")).join(" | "), started: new Date(e.started_at * 1000).toISOString().slice(0, 16).replace("T", " ") })),
      [["name", "name"], ["kind", "kind"], ["status", "status"], ["variants_", "variants (first = control)"], ["holdout", "holdout", "pct"], ["started", "started"],
        ["name", "", (r) => el("span", {}, el("button", { type: "button", "data-report": r.name, onclick: () => showReport(r.name, report) }, "Report"), " ",
          r.status === "running" ? el("button", { type: "button", class: "danger", onclick: async () => { await api(`/experiments/${r.name}/stop`, { method: "POST" }); route(); } }, "Stop") : null)]], { id: "experiments" })
      : el("div", { class: "empty" }, "no experiment yet");
    root.append(panel("Experiments", list), report);
    const form = el("form", { class: "rule", id: "exp-form" },
      el("label", {}, "name", el("input", { name: "name", required: true, pattern: "[A-Za-z0-9_.-]+" })),
      el("label", {}, "kind", el("select", { name: "kind" }, el("option", { value: "ab" }, "A/B test"), el("option", { value: "interleave" }, "interleaving (search)"))),
      el("label", {}, "holdout share", el("input", { name: "holdout", type: "number", step: "0.01", min: 0, max: 0.5, value: 0 })),
      el("label", {}, "control", el("input", { name: "a", value: "control" })),
      el("label", { style: "grid-column: 1 / -1" }, "treatment: name and search overrides (JSON), e.g. bm25 {\"mode\": \"bm25\"}", el("input", { name: "b", value: 'treatment {"dense_weight": 0.6}' })),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Start experiment")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const b = String(f.get("b")).trim(), sp = b.indexOf(" ");
      const variant = sp < 0 ? { name: b } : { name: b.slice(0, sp), search: JSON.parse(b.slice(sp + 1)) };
      try {
        await api("/experiments", { method: "POST", body: JSON.stringify({ name: f.get("name"), kind: f.get("kind"), holdout: Number(f.get("holdout")), variants: [{ name: f.get("a") }, variant] }) });
        notice("experiment started", true); route();
      } catch (e) { notice(e.message); }
    });
    root.append(panel("New experiment", form, { meta: "shoppers are assigned by a salted hash of their id: the same shopper always sees the same variant" }));
  },

  async merch(root) {
    const rules = await api("/merchandising/rules");
    const preview = el("div", { id: "preview" });
    const form = ruleForm(preview);
    const oos = el("input", { type: "checkbox", id: "hide-oos", checked: rules.hide_out_of_stock, onchange: async (e) => { await api(`/merchandising/out-of-stock?hide=${e.target.checked}`, { method: "PUT" }); notice("saved", true); } });
    const rows = rules.rules.map((r) => ({ ...r, match_: describeMatch(r.match), where: [...r.surfaces.map((s) => "on " + s), ...r.queries.map((q) => `"${q}"`)].join(", ") || "everywhere", how: r.action === "pin" ? "position " + r.position : r.action === "exclude" ? "" : "weight " + r.weight }));
    root.append(panel("Rules", el("div", {}, el("label", {}, oos, " hide out-of-stock products everywhere"),
      sortable(rows, [["name", "name"], ["action", "action"], ["match_", "matches"], ["how", "how"], ["where", "where"],
        ["enabled", "on", (r) => el("input", { type: "checkbox", checked: r.enabled, "data-toggle": r.name, onchange: async (e) => { const { match_, where, how, ...rule } = r; await api(`/merchandising/rules/${encodeURIComponent(r.name)}`, { method: "PUT", body: JSON.stringify({ ...rule, enabled: e.target.checked }) }); notice("saved", true); } })],
        ["name", "", (r) => el("span", {}, el("button", { type: "button", onclick: () => fillRule(form, r) }, "Edit"), " ",
          el("button", { type: "button", class: "danger", "data-delete": r.name, onclick: async () => { await api(`/merchandising/rules/${encodeURIComponent(r.name)}`, { method: "DELETE" }); notice("deleted", true); route(); } }, "Delete"))]], { id: "rules", empty: "no rules yet: add one below" })),
    { meta: "saved to rules.json in the engine home, the file `shopsense rules` edits" }));
    root.append(panel("Add or edit a rule", el("div", {}, form, preview)));
    const syn = await api("/merchandising/synonyms");
    const area = el("textarea", { id: "synonyms", rows: 8, style: "width:100%" }, syn.lines.join("\n"));
    root.append(panel("Synonyms", el("div", {}, area, el("button", { type: "button", onclick: async () => {
      try { await api("/merchandising/synonyms", { method: "PUT", body: JSON.stringify({ lines: area.value.split("\n"), rebuild: true }) }); notice("synonyms saved; search index rebuilt", true); } catch (e) { notice(e.message); }
    } }, "Save synonyms")), { meta: syn.own ? "the shop's own synonyms.txt" : "the packaged default (saving creates the shop's own)" }));
  },

  async privacy(root) {
    const out = el("pre", { id: "export-out", hidden: true });
    const user = el("input", { id: "export-user", placeholder: "user id" });
    root.append(panel("A shopper's data", el("div", {}, user, " ", el("button", { type: "button", onclick: async () => {
      try {
        const data = await api(`/privacy/users/${encodeURIComponent(user.value)}/export`);
        out.textContent = JSON.stringify(data, null, 2); out.hidden = false;
      } catch (e) { notice(e.message); }
    } }, "Export as JSON"), out), { meta: "everything stored about one user; deletion: DELETE /users/{id}" }));
    const days = el("input", { id: "retention-days", type: "number", min: 1, value: 365 });
    root.append(panel("Retention", el("div", {}, "Delete events and exposures older than ", days, " days ", el("button", { type: "button", class: "danger", onclick: async () => {
      try { const r = await api(`/privacy/retention?days=${days.value}`, { method: "POST" }); notice(`deleted ${r.removed.events} events and ${r.removed.exposures} exposures before ${r.cutoff}`, true); } catch (e) { notice(e.message); }
    } }, "Apply now")), { meta: "set event_retention_days to have the server do this every hour" }));
  },
};

function describeMatch(m) {
  const parts = [];
  if (m.ids && m.ids.length) parts.push("ids " + m.ids.join(", "));
  if (m.category) parts.push("category " + m.category);
  if (m.brand) parts.push("brand " + m.brand);
  for (const [k, v] of Object.entries(m.attributes || {})) parts.push(`${k}=${v}`);
  if (m.price_min !== null && m.price_min !== undefined) parts.push("price ≥ " + m.price_min);
  if (m.price_max !== null && m.price_max !== undefined) parts.push("price ≤ " + m.price_max);
  return parts.join("; ");
}

function ruleForm(preview) {
  const f = el("form", { class: "rule", id: "rule-form" },
    el("label", {}, "name", el("input", { name: "name", required: true })),
    el("label", {}, "action", el("select", { name: "action" }, ["pin", "boost", "bury", "exclude"].map((a) => el("option", { value: a }, a)))),
    el("label", {}, "position (pin)", el("input", { name: "position", type: "number", min: 1, value: 1 })),
    el("label", {}, "weight (boost, bury)", el("input", { name: "weight", type: "number", step: "0.05", min: 0.05, value: 0.2 })),
    el("label", {}, "product ids (comma)", el("input", { name: "ids" })),
    el("label", {}, "category", el("input", { name: "category" })),
    el("label", {}, "brand", el("input", { name: "brand" })),
    el("label", {}, "only for queries (comma)", el("input", { name: "queries" })),
    el("label", {}, "price from", el("input", { name: "price_min", type: "number", step: "0.01", min: 0 })),
    el("label", {}, "price to", el("input", { name: "price_max", type: "number", step: "0.01", min: 0 })),
    el("label", {}, "only on surface", el("select", { name: "surface" }, ["", "search", "recommend", "similar", "next", "complements", "cart", "substitutes", "bundle"].map((s) => el("option", { value: s }, s || "every surface")))),
    el("label", {}, "preview query", el("input", { name: "preview_q", placeholder: "a query to preview" })),
    el("div", { class: "actions" },
      el("button", { type: "button", id: "preview-btn", onclick: () => doPreview(f, preview) }, "Preview"),
      el("button", { type: "submit", class: "primary", id: "save-rule" }, "Save rule")));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const rule = ruleFrom(f);
      await api(`/merchandising/rules/${encodeURIComponent(rule.name)}`, { method: "PUT", body: JSON.stringify(rule) });
      notice(`rule "${rule.name}" saved`, true); route();
    } catch (e) { notice(e.message); }
  });
  return f;
}

function ruleFrom(f) {
  const v = (n) => String(new FormData(f).get(n) || "").trim();
  const list = (n) => v(n).split(",").map((x) => x.trim()).filter(Boolean);
  const match = {};
  if (list("ids").length) match.ids = list("ids");
  if (v("category")) match.category = v("category");
  if (v("brand")) match.brand = v("brand");
  if (v("price_min")) match.price_min = Number(v("price_min"));
  if (v("price_max")) match.price_max = Number(v("price_max"));
  const rule = { name: v("name"), action: v("action"), match, queries: list("queries"), surfaces: v("surface") ? [v("surface")] : [] };
  if (rule.action === "pin") rule.position = Number(v("position") || 1);
  else if (rule.action !== "exclude") rule.weight = Number(v("weight") || 0.2);
  return rule;
}

function fillRule(f, r) {
  const set = (n, val) => { f.elements[n].value = val === null || val === undefined ? "" : val; };
  set("name", r.name); set("action", r.action); set("position", r.position || 1); set("weight", r.weight);
  set("ids", (r.match.ids || []).join(", ")); set("category", r.match.category); set("brand", r.match.brand);
  set("price_min", r.match.price_min); set("price_max", r.match.price_max); set("queries", r.queries.join(", "));
  set("surface", r.surfaces[0] || ""); set("preview_q", r.queries[0] || "");
  f.scrollIntoView();
}

async function doPreview(f, box) {
  const q = String(new FormData(f).get("preview_q") || "").trim();
  if (!q) { notice("type a query to preview"); return; }
  let rule = null;
  try { rule = ruleFrom(f); if (!rule.name) rule.name = "draft"; } catch (_) { rule = null; }
  try {
    const p = await api("/merchandising/preview", { method: "POST", body: JSON.stringify({ query: q, k: 10, rule: Object.keys(rule.match).length ? rule : null }) });
    const li = (h, cls) => el("li", { class: cls, "data-id": h.id }, h.title || h.id, " ", el("span", { class: "meta" }, h.id + (h.price != null ? " · " + fmt(h.price, "money") : "")));
    box.replaceChildren(el("div", { class: "preview", "data-query": q },
      el("div", {}, el("h3", {}, `"${q}" now`), el("ol", { id: "preview-before" }, p.before.map((h) => li(h)))),
      el("div", {}, el("h3", {}, "with this rule"), el("ol", { id: "preview-after" }, p.after.map((h) => li(h, h.was === null ? "new" : h.was !== h.now ? "moved" : ""))))));
  } catch (e) { notice(e.message); }
}

async function showReport(name, box) {
  try {
    const r = await api(`/experiments/${encodeURIComponent(name)}/report`);
    if (r.kind === "interleave") {
      box.replaceChildren(panel(`Report: ${name} (interleaving)`, el("div", {},
        el("p", {}, `${r.impressions} interleaved searches: ${r.a} won ${r.wins_a}, ${r.b} won ${r.wins_b}, ties ${r.ties}; sign test p = ${r.p_value.toPrecision(3)}. `,
          el("b", {}, r.better ? `${r.better} is better.` : "No significant preference yet.")),
        barChart("impressions won", [[r.a, r.wins_a], [r.b, r.wins_b], ["tie", r.ties]]))));
      return;
    }
    const iv = (d, kind) => (d ? `${fmt(d.estimate, kind)} [${fmt(d.low, kind)}, ${fmt(d.high, kind)}]` : "");
    const rows = Object.entries(r.arms).map(([arm, m]) => ({ arm, ...m, ctr_d: iv(m.ctr_diff, "pct"), ppu_d: iv(m.purchases_per_user_diff), cuped_d: m.purchases_per_user_diff_cuped ? iv(m.purchases_per_user_diff_cuped) + ` (variance −${fmt(m.purchases_per_user_diff_cuped.variance_reduction, "pct")})` : "" }));
    box.replaceChildren(panel(`Report: ${name}`, el("div", {},
      el("p", {}, "Sample ratio: ", el("span", { class: r.srm.mismatch ? "badge bad" : "badge", id: "srm" }, r.srm.mismatch ? `mismatch (p = ${r.srm.p_value.toPrecision(2)}): do not trust these results` : `ok (p = ${r.srm.p_value.toPrecision(2)})`)),
      sortable(rows, [["arm", "arm"], ["users", "shoppers"], ["impressions", "lists shown"], ["ctr", "click-through", "pct"], ["ctr_d", "vs control [95%]"], ["purchases_per_user", "purchases / shopper"], ["ppu_d", "vs control [95%]"], ["cuped_d", "CUPED [95%]"], ["revenue_per_user", "revenue / shopper", "money"]], { id: "exp-arms" })),
    { meta: `control: ${r.control}` }));
  } catch (e) { notice(e.message); }
}

// -- routing ----------------------------------------------------------------------------------------------------
async function route() {
  const tab = (location.hash || "#overview").slice(1);
  const page = pages[tab] ? tab : "overview";
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.tab === page));
  const root = $("#page");
  root.replaceChildren(el("div", { class: "empty" }, "loading…"));
  root.dataset.page = page;
  const fresh = el("div", { "data-page": page });
  try {
    await pages[page](fresh);
    root.replaceChildren(fresh);
    root.dataset.ready = page;
  } catch (e) {
    root.replaceChildren(el("div", { class: "empty" }, e.message));
    notice(e.message);
  }
}

async function start() {
  if (!state.key) {
    try {
      const cfg = await fetch("/storefront/config").then((r) => r.json());
      if (cfg.demo_key) state.key = cfg.demo_key;  // demo mode only: the server hands its local key out
    } catch (_) { /* no demo */ }
  }
  $("#key").value = state.key;
  $("#key").addEventListener("change", (e) => { state.key = e.target.value.trim(); localStorage.setItem(KEY_STORE, state.key); route(); });
  setRange(30);
  document.querySelectorAll("#range button").forEach((b) => b.addEventListener("click", () => { setRange(Number(b.dataset.days)); route(); }));
  for (const id of ["since", "until"]) $("#" + id).addEventListener("change", (e) => { state[id] = e.target.value; route(); });
  window.addEventListener("hashchange", route);
  route();
}
start();
