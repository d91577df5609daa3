// shopsense storefront: plain JS, no build step, nothing loaded from outside this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  key: null, user: null, session: "s-" + Math.random().toString(36).slice(2, 10),
  cart: [], filters: {}, q: "", recsVersion: 0, lastRecIds: [], refreshTimer: null,
};

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

async function api(path, opts = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
  if (state.key) headers["X-API-Key"] = state.key;
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const msg = body && body.message ? body.message : res.statusText;
    const err = new Error(msg); err.status = res.status; err.body = body; throw err;
  }
  return body;
}

function notice(text) {
  const n = $("#notice");
  n.textContent = text; n.hidden = !text;
}

// -- images: hosts are often unreachable (offline demo), so every image has a neat fallback
const PALETTE = ["#0b6e4f", "#2a6f97", "#7b2cbf", "#c05621", "#2f855a", "#9b2c2c", "#4a5568", "#b7791f"];
function placeholder(p) {
  const label = (p.category && p.category.length ? p.category[p.category.length - 1] : p.brand) || "";
  const words = (p.title || p.id || "?").replace(/[^\p{L}\p{N} ]/gu, " ").split(/\s+/).filter(Boolean);
  const initials = words.slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  let hash = 0; for (const c of label || p.id) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return h("div", { class: "ph", style: `background:${PALETTE[hash % PALETTE.length]}` },
    initials, h("small", {}, label));
}
function thumb(p) {
  const box = h("div", { class: "thumb" });
  if (p && p.image_url) {
    const img = h("img", { src: p.image_url, alt: p.title, loading: "lazy", referrerpolicy: "no-referrer" });
    img.addEventListener("error", () => { box.replaceChildren(placeholder(p)); });
    box.append(img);
  } else box.append(placeholder(p || {}));
  return box;
}

function money(p) {
  return p && p.price !== null && p.price !== undefined ? `${p.price.toFixed(2)} ${p.currency || ""}` : "";
}

function reasonOf(hit) {
  if (hit.reason) return hit.reason;
  return { bm25: "Matches your search", dense: "Close in meaning to your search", popular: "Popular right now" }[hit.source] || hit.source;
}

function card(hit, surface, opts = {}) {
  const p = hit.product || { id: hit.id, title: hit.id };
  const el = h("div", { class: "card", "data-id": hit.id, "data-source": hit.source, "data-surface": surface },
    thumb(p),
    h("div", { class: "title" }, p.title),
    h("div", { class: "meta" }, [p.brand, p.category && p.category[p.category.length - 1]].filter(Boolean).join(" · ")),
    h("div", { class: "price" }, money(p)),
    h("div", { class: "reason", title: JSON.stringify(hit.evidence || {}) }, reasonOf(hit)),
    h("button", { class: "add ghost", type: "button", onclick: (e) => { e.stopPropagation(); addToCart(p); } }, "Add to cart"));
  if (opts.fresh) el.classList.add("fresh");
  el.addEventListener("click", () => { sendEvent("click", hit.id); location.hash = "#/item/" + encodeURIComponent(hit.id); });
  return el;
}

function fill(container, hits, surface, emptyText, freshIds) {
  const el = $(container);
  el.replaceChildren(...(hits.length ? hits.map((x) => card(x, surface, { fresh: freshIds && freshIds.has(x.id) }))
    : [h("div", { class: "empty" }, emptyText)]));
}

// -- events: every click, view, search and add-to-cart is a real POST /events
async function sendEvent(type, itemId, query) {
  if (!state.key || !state.user) return;
  const ev = { user_id: state.user, type, session_id: state.session, timestamp: Date.now() / 1000 };
  if (itemId) ev.item_id = itemId;
  if (query) ev.query = query;
  try {
    await api("/events", { method: "POST", body: JSON.stringify([ev]) });
    scheduleRecs();
  } catch (e) { notice(`event not recorded: ${e.message}`); }
}

function scheduleRecs() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(loadRecs, 250);
}

async function loadRecs() {
  if (!state.user) return;
  $("#recs-status").textContent = "updating…";
  try {
    const r = await api(`/users/${encodeURIComponent(state.user)}/recommendations?k=12`);
    const ids = r.hits.map((x) => x.id);
    const fresh = new Set(state.lastRecIds.length ? ids.filter((i) => !state.lastRecIds.includes(i)) : []);
    const changed = state.lastRecIds.length && (fresh.size > 0 || ids.join() !== state.lastRecIds.join());
    state.lastRecIds = ids;
    state.recsVersion += 1;
    $("#recs").dataset.version = String(state.recsVersion);
    $("#recs").dataset.ids = ids.join(",");
    fill("#recs", r.hits, "recommend", "No recommendations yet.", fresh);
    $("#recs-status").textContent = changed
      ? `updated from your activity: ${fresh.size} new` : `for ${state.user}`;
  } catch (e) {
    $("#recs-status").textContent = `unavailable (${e.message})`;
    $("#recs").replaceChildren(h("div", { class: "empty" }, "Recommendations are not available right now."));
  }
}

// -- cart
function addToCart(p) {
  if (!state.cart.find((x) => x.id === p.id)) state.cart.push(p);
  sendEvent("add_to_cart", p.id);
  renderCart();
  $("#cart").hidden = false;
}

async function renderCart() {
  $("#cart-count").textContent = String(state.cart.length);
  $("#cart-items").replaceChildren(...state.cart.map((p) => h("li", { "data-id": p.id }, p.title, " ", h("span", { class: "meta" }, money(p)))));
  if (!state.cart.length) { $("#cart-complete").replaceChildren(h("div", { class: "empty" }, "Your cart is empty.")); return; }
  try {
    const r = await api("/carts/complete", { method: "POST", body: JSON.stringify({ items: state.cart.map((p) => p.id), k: 5 }) });
    fill("#cart-complete", r.hits, "cart", "Nothing to add.");
  } catch (e) { $("#cart-complete").replaceChildren(h("div", { class: "empty" }, `unavailable (${e.message})`)); }
}

// -- search with facets
function facetGroups(info, hits) {
  const groups = {};
  const f = info.facets;
  if (f && typeof f === "object") {
    for (const [name, vals] of Object.entries(f)) {
      if (Array.isArray(vals)) groups[name] = vals.map((v) => [String(v.value ?? v.name ?? v[0]), v.count ?? v[1]]);
      else if (vals && typeof vals === "object") groups[name] = Object.entries(vals);
    }
  }
  if (!Object.keys(groups).length) { // derive from the results when the engine sent none
    const count = (fn) => { const m = {}; for (const x of hits) { const v = fn(x.product || {}); if (v) m[v] = (m[v] || 0) + 1; } return Object.entries(m); };
    groups.category = count((p) => p.category && p.category[p.category.length - 1]);
    groups.brand = count((p) => p.brand);
  }
  for (const k of Object.keys(groups)) groups[k] = groups[k].filter((x) => x[0] && x[1]).sort((a, b) => b[1] - a[1]).slice(0, 8);
  return groups;
}

const FILTERABLE = { category: "category", brand: "brand", in_stock: "in_stock" };

function renderFacets(groups) {
  const box = $("#facets");
  box.replaceChildren(h("div", { class: "meta" }, "Refine"));
  for (const [name, vals] of Object.entries(groups)) {
    if (!vals.length) continue;
    box.append(h("h3", {}, name.replace(/_/g, " ")));
    for (const [value, n] of vals) {
      const param = FILTERABLE[name] || null;
      box.append(h("button", { class: "facet", type: "button", "data-facet": name, "data-value": value,
        onclick: () => { if (param) { state.filters[param] = value; } else { state.filters["attr:" + name] = value; } runSearch(); } },
      h("span", {}, value), h("span", { class: "n" }, String(n))));
    }
  }
}

function renderUnderstood(q, info) {
  // the search service returns what it understood in info.query (corrections, constraints)
  const parsed = info.query || {};
  const parts = [];
  const fixes = Object.entries(parsed.corrections || {});
  if (fixes.length) {
    let corrected = q;
    for (const [a, b] of fixes) corrected = corrected.replace(new RegExp(`\\b${a.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`, "i"), b);
    parts.push(h("span", {}, "Showing results for ", h("b", { id: "corrected" }, corrected), " "));
  }
  const cons = Object.entries(parsed.constraints || {}).filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" && !Object.keys(v).length))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? Object.entries(v).map(([a, b]) => `${a} ${b}`).join(", ") : v}`);
  if (cons.length) parts.push(h("span", {}, "· understood ", h("b", {}, cons.join("; ")), " "));
  if (parsed.category) parts.push(h("span", {}, "· category ", h("b", {}, parsed.category), " "));
  if (typeof info.total === "number") parts.push(h("span", {}, `· ${info.total} matches`));
  $("#understood").replaceChildren(...parts);
}

async function runSearch() {
  const q = state.q;
  if (!q) return;
  const params = new URLSearchParams({ q, k: "24" });
  if (state.user) params.set("user_id", state.user);
  const attrs = [];
  for (const [k, v] of Object.entries(state.filters)) {
    if (k.startsWith("attr:")) attrs.push(`${k.slice(5)}:${v}`); else params.set(k, v);
  }
  for (const a of attrs) params.append("attr", a);
  $("#active-filters").replaceChildren(...Object.entries(state.filters).map(([k, v]) =>
    h("button", { class: "chip", type: "button", onclick: () => { delete state.filters[k]; runSearch(); } }, `${k.replace("attr:", "")}: ${v} ×`)));
  try {
    const r = await api("/search?" + params.toString());
    renderUnderstood(q, r);
    renderFacets(facetGroups(r, r.hits));
    fill("#results", r.hits, "search", `No results for “${q}”.`);
  } catch (e) {
    $("#results").replaceChildren(h("div", { class: "empty" }, `Search failed: ${e.message}`));
  }
}

// -- product page
async function showItem(id) {
  const detail = $("#item-detail");
  let p;
  try { p = await api("/items/" + encodeURIComponent(id)); } catch (e) { detail.replaceChildren(h("div", { class: "empty" }, e.message)); return; }
  sendEvent("view", id);
  detail.replaceChildren(thumb(p), h("div", {},
    h("h1", {}, p.title),
    h("div", { class: "meta" }, [p.brand, (p.category || []).join(" › ")].filter(Boolean).join(" · ")),
    h("p", { class: "price" }, money(p)),
    h("p", {}, (p.description || "").slice(0, 600)),
    h("button", { id: "add-main", type: "button", onclick: () => addToCart(p) }, "Add to cart")));
  const safe = async (sel, fn, surface, empty) => {
    try { const r = await fn(); fill(sel, r.hits, surface, empty); }
    catch (e) { $(sel).replaceChildren(h("div", { class: "empty" }, `unavailable (${e.message})`)); }
  };
  safe("#similar", () => api(`/items/${encodeURIComponent(id)}/similar?k=10`), "similar", "No similar items.");
  safe("#complements", () => api(`/items/${encodeURIComponent(id)}/complements?k=10`), "complements", "No complements found yet.");
  try {
    const b = await api("/bundles", { method: "POST", body: JSON.stringify({ items: [id], size: 3 }) });
    const box = $("#bundle");
    // the engine returns the items added to the anchor; show the whole bundle
    const anchor = { id, score: 1, source: "anchor", reason: "This item", product: p };
    const all = b.hits.length ? [anchor, ...b.hits] : [];
    const cards = all.map((x) => card(x, "bundle"));
    const total = all.reduce((s, x) => s + ((x.product && x.product.price) || 0), 0);
    const parts = [];
    cards.forEach((c, i) => { if (i) parts.push(h("span", { class: "plus" }, "+")); parts.push(c); });
    box.replaceChildren(...(cards.length ? parts : [h("div", { class: "empty" }, "No bundle for this item.")]),
      total ? h("div", { class: "price" }, `together ${total.toFixed(2)}`) : "");
  } catch (e) { $("#bundle").replaceChildren(h("div", { class: "empty" }, `unavailable (${e.message})`)); }
}

// -- routing
function route() {
  const hash = decodeURIComponent(location.hash || "#/");
  $("#view-search").hidden = true; $("#view-item").hidden = true;
  if (hash.startsWith("#/item/")) {
    $("#view-item").hidden = false; window.scrollTo(0, 0);
    showItem(hash.slice(7));
  } else if (hash.startsWith("#/search/")) {
    $("#view-search").hidden = false;
    const q = hash.slice(9);
    if (q !== state.q) state.filters = {};
    state.q = q; $("#q").value = q;
    runSearch();
  }
}

async function init() {
  let cfg = {};
  try { cfg = await api("/storefront/config"); } catch (e) { cfg = {}; }
  state.key = cfg.demo_key || localStorage.getItem("shopsense_key");
  if (!state.key) notice("No API key: browsing works, but events are not recorded. Start the server with --demo, or run localStorage.setItem('shopsense_key', '<write key>').");
  const users = cfg.demo_users || [];
  const guest = "guest-" + state.session.slice(2);
  const sel = $("#user");
  for (const u of users.concat([guest])) sel.append(h("option", { value: u }, u));
  state.user = sel.value = users[0] || guest;
  sel.addEventListener("change", () => { state.user = sel.value; state.lastRecIds = []; loadRecs(); });
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("#q").value.trim();
    if (!q) return;
    sendEvent("search", null, q);
    location.hash = "#/search/" + encodeURIComponent(q);
  });
  $("#cart-btn").addEventListener("click", () => { $("#cart").hidden = !$("#cart").hidden; renderCart(); });
  $("#cart-close").addEventListener("click", () => { $("#cart").hidden = true; });
  window.addEventListener("hashchange", route);
  route();
  loadRecs();
}

init();
