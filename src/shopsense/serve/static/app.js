// shopsense storefront: plain JS, no build step, nothing loaded from outside this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  key: null, user: null, session: "s-" + Math.random().toString(36).slice(2, 10),
  cart: [], filters: {}, q: "", recsVersion: 0, lastRecIds: [], refreshTimer: null,
  item: null, lastFocus: null,
  clickedFrom: {},  // item id -> the list (and position) it was last clicked from, this page session
};
const STORE = { cart: "shopsense_cart", recent: "shopsense_recent" };

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid);
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

function load(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch (e) { return fallback; }
}
function save(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode: memory only */ }
}

// -- words a shopper reads: attribute names and filters without internal spellings
const ACRONYMS = new Set(["ean", "upc", "usb", "hdmi", "lan", "led", "lcd", "sku", "id", "rj", "ac", "dc", "cpu", "gpu", "ram"]);
function label(name) {
  const words = String(name).replace(/[_-]+/g, " ").trim().split(/\s+/);
  return words.map((w, i) => ACRONYMS.has(w.toLowerCase()) ? w.toUpperCase()
    : i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w).join(" ");
}
function leaf(p) { return p && p.category && p.category.length ? p.category[p.category.length - 1] : ""; }
function priceRange(lo, hi) {
  if (lo !== undefined && lo !== null && hi !== undefined && hi !== null) return `${fmt(lo)}–${fmt(hi)}`;
  if (hi !== undefined && hi !== null) return `under ${fmt(hi)}`;
  return `over ${fmt(lo)}`;
}
function fmt(x) { return Number.isInteger(x) ? String(x) : Number(x).toFixed(2); }

// -- images: hosts are often unreachable (offline demo), so every image has a neat fallback
const PALETTE = ["#0b6e4f", "#2a5f85", "#6a28a8", "#9a4515", "#276749", "#9b2c2c", "#4a5568", "#7a4f0e"];
function placeholder(p) {
  const words = (p.title || p.id || "?").replace(/[^\p{L}\p{N} ]/gu, " ").split(/\s+/).filter(Boolean);
  const initials = words.slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  const key = leaf(p) || p.brand || p.id || "?";
  let hash = 0; for (const c of key) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return h("div", { class: "ph", style: `background:${PALETTE[hash % PALETTE.length]}`, "aria-hidden": "true" },
    initials, h("small", {}, leaf(p) || p.brand || ""));
}
function thumb(p) {
  // the placeholder first; the picture replaces it once it has loaded (an unreachable
  // image host, as in the offline demo, never leaves an empty box)
  const box = h("div", { class: "thumb" }, placeholder(p || {}));
  if (p && p.image_url) {
    const img = h("img", { alt: "", referrerpolicy: "no-referrer" });
    img.addEventListener("load", () => { if (img.naturalWidth > 1) box.replaceChildren(img); });
    img.src = p.image_url;
  }
  return box;
}

function hasPrice(p) { return p && p.price !== null && p.price !== undefined; }
function money(x, currency) { return `${Number(x).toFixed(2)}${currency ? " " + currency : ""}`; }
function priceOf(p) { return hasPrice(p) ? money(p.price, p.currency) : ""; }
function priceEl(p, cls = "price") {
  return hasPrice(p) ? h("div", { class: cls }, priceOf(p)) : h("div", { class: cls + " unknown" }, "Price not available");
}

function reasonOf(hit) {
  if (hit.reason) return hit.reason;
  return { bm25: "Matches your search", dense: "Related to your search", popular: "Popular with shoppers" }[hit.source] || "Recommended";
}

function itemHref(id) { return "#/item/" + encodeURIComponent(id); }

function card(hit, surface, opts = {}) {
  const p = hit.product || { id: hit.id, title: hit.id };
  const from = opts.from || null;  // {list_id, surface, variant, experiment, position}: an engine list's item
  const low = hit.evidence && hit.evidence.low_confidence;
  const el = h("article", { class: "card" + (low ? " low" : ""), "data-id": hit.id, "data-source": hit.source,
    "data-surface": surface },
  thumb(p),
  h("a", { class: "title", href: itemHref(hit.id), onclick: () => { sendEvent("click", hit.id); clicked(hit.id, from); } }, p.title),
  h("div", { class: "meta" }, [p.brand, leaf(p)].filter(Boolean).join(" · ")),
  priceEl(p),
  opts.reason === false ? null : h("div", { class: "reason" + (low ? " low" : "") }, reasonOf(hit)),
  h("button", { class: "add ghost", type: "button", "aria-label": `Add to cart: ${p.title}`,
    onclick: (e) => { e.stopPropagation(); addToCart(p, 1, from); } }, "Add to cart"));
  if (opts.fresh) el.classList.add("fresh");
  // the whole card is a pointer target; keyboard users have the title link and the button
  el.addEventListener("click", (e) => {
    if (e.target.closest("a, button")) return;
    sendEvent("click", hit.id); clicked(hit.id, from); location.hash = itemHref(hit.id);
  });
  return el;
}

function fill(container, hits, surface, emptyText, opts = {}) {
  const el = typeof container === "string" ? $(container) : container;
  const list = opts.list ? listOf(opts.list) : null;  // the engine's answer these hits come from
  el.replaceChildren(...(hits.length ? hits.map((x, i) => card(x, surface, { reason: opts.reason,
    fresh: opts.fresh && opts.fresh.has(x.id), from: list && Object.assign({ position: i + 1 }, list) }))
    : [h("p", { class: "empty" }, emptyText)]));
  if (opts.list) whenSeen(el, () => impression(opts.list, hits, opts.query));
}

// -- lists worth showing: no near-identical titles, some category variety in a row
function titleKey(t) {
  const words = String(t || "").toLowerCase().replace(/\([^)]*\)/g, " ").match(/[\p{L}\p{N}&+]+/gu) || [];
  return new Set(words.filter((w) => w.length > 1 || /\d/.test(w)));
}
function nearDuplicate(a, b, threshold = 0.6) {
  if (!a.size || !b.size) return false;
  let inter = 0; for (const w of a) if (b.has(w)) inter += 1;
  return inter / (a.size + b.size - inter) >= threshold;
}
// the makers a shopper reads: the brand's first word and the title's (a reseller's brand field
// can differ from the maker the title starts with: both count against the limit)
function makers(p) {
  const first = (t) => (String(t || "").trim().split(/\s+/)[0] || "").toLowerCase();
  return [...new Set([first(p.brand), first(p.title)].filter(Boolean))];
}
const makerCount = (byBrand, p) => Math.max(0, ...makers(p).map((m) => byBrand[m] || 0));
const countMakers = (byBrand, p) => makers(p).forEach((m) => { byBrand[m] = (byBrand[m] || 0) + 1; });
function diversify(hits, k, { perCategory = 2, perParent = 3, perBrand = 3, perReason = 3, exclude = [] } = {}) {
  const keys = exclude.map(titleKey);
  const byCat = {}, byParent = {}, byBrand = {}, byReason = {};
  const out = [], spare = [];
  for (const x of hits) {
    const p = x.product || {};
    const key = titleKey(p.title || x.id);
    if (keys.some((k2) => nearDuplicate(key, k2))) continue;
    const cat = leaf(p) || "?", why = x.reason || x.source;
    const parent = p.category && p.category.length > 1 ? p.category[p.category.length - 2] : cat;
    if ((byCat[cat] || 0) >= perCategory || (byParent[parent] || 0) >= perParent
        || makerCount(byBrand, p) >= perBrand || (byReason[why] || 0) >= perReason) {
      spare.push([x, key]); continue;
    }
    byCat[cat] = (byCat[cat] || 0) + 1; byParent[parent] = (byParent[parent] || 0) + 1;
    countMakers(byBrand, p); byReason[why] = (byReason[why] || 0) + 1;
    keys.push(key); out.push(x);
    if (out.length >= k) return out;
  }
  // not enough variety to be strict: fill with what breaks the fewest limits, never a duplicate
  const over = ([x]) => {
    const p = x.product || {}, cat = leaf(p) || "?";
    const parent = p.category && p.category.length > 1 ? p.category[p.category.length - 2] : cat;
    return (byCat[cat] || 0) / perCategory + (byParent[parent] || 0) / perParent
      + makerCount(byBrand, p) / perBrand + 2 * (byReason[x.reason || x.source] || 0) / perReason;
  };
  // a maker or a reason already at its limit comes last: five binders of one maker read as one
  // product, and four cards saying "Because you bought X" as one suggestion
  const full = ([x]) => (makerCount(byBrand, x.product || {}) >= perBrand ? 1 : 0)
    + ((byReason[x.reason || x.source] || 0) >= perReason ? 1 : 0);
  while (out.length < k && spare.length) {
    let best = -1;
    const better = (sp, b) => full(sp) !== full(b) ? full(sp) < full(b) : over(sp) < over(b);
    spare.forEach((sp, i) => { if (!keys.some((k2) => nearDuplicate(sp[1], k2)) && (best < 0 || better(sp, spare[best]))) best = i; });
    if (best < 0) break;
    const [[x, key]] = spare.splice(best, 1);
    const p = x.product || {}, cat = leaf(p) || "?";
    const parent = p.category && p.category.length > 1 ? p.category[p.category.length - 2] : cat;
    byCat[cat] = (byCat[cat] || 0) + 1; byParent[parent] = (byParent[parent] || 0) + 1;
    countMakers(byBrand, p);
    byReason[x.reason || x.source] = (byReason[x.reason || x.source] || 0) + 1;
    keys.push(key); out.push(x);
  }
  return out;
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

// -- exposures: what each list showed, and the clicks, carts and purchases that came from it
// (POST /exposures, for the owner's analytics and experiments). Queued and sent in batches,
// never in the way of rendering; a failure is only a console warning.
const EXPOSURE_FLUSH_MS = 300;
const exposures = { queue: [], timer: null, shown: new Set(), pending: new Map() };

// the list identity an engine answer carries (info.list_id, info.surface, variant, experiment)
function listOf(r) {
  if (!r || !r.list_id || !r.surface) return null;
  const out = { list_id: String(r.list_id), surface: String(r.surface) };
  if (typeof r.variant === "string" && r.variant) out.variant = r.variant;
  if (typeof r.experiment === "string" && r.experiment) out.experiment = r.experiment;
  return out;
}

function queueExposure(x) {
  if (!state.key || !state.user) return;  // as for /events: no key, nothing recorded
  try {
    exposures.queue.push(Object.assign({ user_id: state.user, session_id: state.session, timestamp: Date.now() / 1000 }, x));
    if (!exposures.timer) exposures.timer = setTimeout(flushExposures, EXPOSURE_FLUSH_MS);
  } catch (e) { console.warn("exposure not queued:", e); }
}

function flushExposures(keepalive = false) {
  clearTimeout(exposures.timer); exposures.timer = null;
  if (!exposures.queue.length || !state.key) return;
  const batch = exposures.queue.splice(0, exposures.queue.length);
  try {
    fetch("/exposures", { method: "POST", keepalive, body: JSON.stringify(batch),
      headers: { "Content-Type": "application/json", "X-API-Key": state.key } })
      .then((res) => { if (!res.ok) console.warn(`exposures not recorded: HTTP ${res.status}`); })
      .catch((e) => console.warn("exposures not recorded:", e));
  } catch (e) { console.warn("exposures not recorded:", e); }
}

// one impression per list shown: the ids in the order shown (a re-render of the same
// list with the same items is not shown again)
function impression(r, hits, query) {
  const list = listOf(r);
  if (!list) return;
  const items = hits.map((x) => String(x.id));
  const key = list.list_id + "|" + items.join(",");
  if (exposures.shown.has(key)) return;
  exposures.shown.add(key);
  const x = Object.assign({ kind: "impression", items, n_results: typeof r.total === "number" ? r.total : Array.isArray(r.hits) ? r.hits.length : items.length }, list);
  if (query) x.query = String(query).slice(0, 500);
  queueExposure(x);
}

// a list rendered in a hidden view or the closed cart (recommendations refreshed while the
// shopper is on a product page) counts as shown once its container is visible
function whenSeen(el, post) {
  exposures.pending.delete(el);
  if (!el.closest("[hidden]")) post(); else exposures.pending.set(el, post);
}
function flushSeen() {
  for (const [el, post] of exposures.pending) {
    if (!document.contains(el)) exposures.pending.delete(el);
    else if (!el.closest("[hidden]")) { exposures.pending.delete(el); post(); }
  }
}

// a click, add-to-cart or purchase of an item that came from a list (from: its list and position)
function listAction(kind, itemId, from, extra = {}) {
  if (!from || !from.list_id) return;
  queueExposure(Object.assign({ kind, item_id: String(itemId) }, from, extra));
}

function clicked(itemId, from) {
  if (!from) return;
  state.clickedFrom[itemId] = from;
  listAction("click", itemId, from);
}

// the demo storefront has no checkout: a shop's own checkout calls
// window.shopsenseStorefront.purchased() (the cart by default) to credit each bought item
// to the list it was last clicked or added from in this page session
function purchased(lines = state.cart) {
  for (const line of lines) {
    const p = line.product || {};
    listAction("purchase", line.id, state.clickedFrom[line.id],
      Object.assign({ quantity: Math.max(1, line.qty || 1) }, hasPrice(p) ? { price: p.price } : {}));
  }
  flushExposures();
}
window.shopsenseStorefront = { purchased, flushExposures };

function scheduleRecs() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(loadRecs, 250);
}

// -- home: recommendations, recently viewed, categories, popular items
async function loadRecs() {
  if (!state.user) return;
  $("#recs-status").textContent = "updating…";
  try {
    // eight times what is shown: room to skip near-duplicates, crowded categories, makers and reasons
    const r = await api(`/users/${encodeURIComponent(state.user)}/recommendations?k=96`);
    const hits = diversify(r.hits, 12, { exclude: state.cart.map((x) => x.product.title) });
    const ids = hits.map((x) => x.id);
    const fresh = new Set(state.lastRecIds.length ? ids.filter((i) => !state.lastRecIds.includes(i)) : []);
    const changed = state.lastRecIds.length && (fresh.size > 0 || ids.join() !== state.lastRecIds.join());
    state.lastRecIds = ids;
    state.recsVersion += 1;
    $("#recs").dataset.version = String(state.recsVersion);
    $("#recs").dataset.ids = ids.join(",");
    const personal = r.personalised !== false;
    $("#recs-title").firstChild.textContent = personal ? "Recommended for you " : "Popular now ";
    fill("#recs", hits, "recommend", "No recommendations yet.", { fresh, list: r });
    $("#recs-status").textContent = changed ? `updated from your activity: ${fresh.size} new`
      : personal ? `for ${state.user}` : "nothing to personalise yet";
  } catch (e) {
    $("#recs-status").textContent = `unavailable (${e.message})`;
    $("#recs").replaceChildren(h("p", { class: "empty" }, "Recommendations are not available right now."));
  }
}

function renderRecent() {
  const recent = load(STORE.recent, []).filter((p) => p && p.id);
  $("#recent-section").hidden = !recent.length;
  fill("#recent", recent.slice(0, 8).map((p) => ({ id: p.id, source: "recent", product: p })), "recent", "", { reason: false });
}

function rememberViewed(p) {
  const keep = ["id", "title", "brand", "category", "price", "currency", "image_url", "in_stock"];
  const slim = Object.fromEntries(keep.map((k) => [k, p[k]]));
  const recent = load(STORE.recent, []).filter((x) => x && x.id !== p.id);
  save(STORE.recent, [slim, ...recent].slice(0, 12));
}

async function loadHome() {
  renderRecent();
  try {
    const r = await api("/storefront/home?k=24&categories=12");
    $("#categories").replaceChildren(...r.categories.map((c) => h("a", {
      class: "cat", href: "#/category/" + encodeURIComponent(c.name) }, thumb(c.example),
    h("span", { class: "cat-name" }, c.name), h("span", { class: "meta" }, `${c.count} products`))));
    fill("#popular", diversify(r.popular.hits, 12, { perParent: 4, perBrand: 3, perReason: 99 }), "popular",
      r.popular_error ? "Popular items appear once the recommenders are trained." : "Nothing popular yet.",
      { reason: false, list: r.popular });
  } catch (e) {
    $("#categories").replaceChildren(h("p", { class: "empty" }, `Categories unavailable (${e.message})`));
  }
}

// -- cart: quantities, prices, remove, subtotal, completion
function persistCart() { save(STORE.cart, state.cart); }

function addToCart(p, qty = 1, from = null) {
  const line = state.cart.find((x) => x.id === p.id);
  if (line) line.qty += qty; else state.cart.push({ id: p.id, qty, product: p });
  persistCart();
  sendEvent("add_to_cart", p.id);
  const origin = from || state.clickedFrom[p.id];
  if (origin) {
    state.clickedFrom[p.id] = origin;  // a later purchase of it is credited to the same list
    listAction("add_to_cart", p.id, origin, Object.assign({ quantity: qty }, hasPrice(p) ? { price: p.price } : {}));
  }
  renderCart();
  openCart();
}

function setQty(id, qty) {
  const line = state.cart.find((x) => x.id === id);
  if (!line) return;
  if (qty <= 0) state.cart = state.cart.filter((x) => x.id !== id); else line.qty = qty;
  persistCart();
  renderCart();
}

function openCart() {
  const cart = $("#cart");
  if (!cart.hidden) return;
  state.lastFocus = document.activeElement;
  cart.hidden = false; $("#backdrop").hidden = false;
  $("#cart-btn").setAttribute("aria-expanded", "true");
  document.body.classList.add("drawer-open");
  $("#cart-close").focus();
  flushSeen();
}
function closeCart() {
  $("#cart").hidden = true; $("#backdrop").hidden = true;
  $("#cart-btn").setAttribute("aria-expanded", "false");
  document.body.classList.remove("drawer-open");
  const back = state.lastFocus && document.contains(state.lastFocus) ? state.lastFocus : $("#cart-btn");
  back.focus();
}

function cartLine(line) {
  const p = line.product;
  const total = hasPrice(p) ? money(p.price * line.qty, p.currency) : "no price";
  return h("li", { "data-id": p.id, class: "cart-line" },
    thumb(p),
    h("div", { class: "cart-main" },
      h("a", { class: "title", href: itemHref(p.id), onclick: closeCart }, p.title),
      h("div", { class: "meta" }, hasPrice(p) ? `${priceOf(p)} each` : "Price not available"),
      h("div", { class: "qty", role: "group", "aria-label": `Quantity of ${p.title}` },
        h("button", { type: "button", class: "ghost step dec", "aria-label": "One less",
          onclick: () => setQty(p.id, line.qty - 1) }, "−"),
        h("output", { class: "n", "aria-live": "polite" }, String(line.qty)),
        h("button", { type: "button", class: "ghost step inc", "aria-label": "One more",
          onclick: () => setQty(p.id, line.qty + 1) }, "+"),
        h("button", { type: "button", class: "link remove", "aria-label": `Remove: ${p.title}`,
          onclick: () => setQty(p.id, 0) }, "Remove"))),
    h("div", { class: "line-total" + (hasPrice(p) ? "" : " unknown") }, total));
}

async function renderCart() {
  const count = state.cart.reduce((s, x) => s + x.qty, 0);
  $("#cart-count").textContent = String(count);
  $("#cart-items-word").textContent = count === 1 ? " item" : " items";
  $("#cart-items").replaceChildren(...state.cart.map(cartLine));
  const priced = state.cart.filter((x) => hasPrice(x.product));
  const unpriced = state.cart.filter((x) => !hasPrice(x.product));
  const currency = priced.length ? priced[0].product.currency : "";
  const subtotal = priced.reduce((s, x) => s + x.product.price * x.qty, 0);
  $("#cart-summary").replaceChildren(...(state.cart.length ? [
    h("div", { class: "subtotal" }, h("span", {}, `Subtotal (${count} item${count === 1 ? "" : "s"})`),
      h("b", { id: "cart-subtotal" }, priced.length ? money(subtotal, currency) : "—")),
    unpriced.length ? h("p", { class: "meta" }, `${unpriced.length} item${unpriced.length === 1 ? " has" : "s have"} no price and ${unpriced.length === 1 ? "is" : "are"} not in the subtotal.`) : null,
  ] : [h("p", { class: "empty" }, "Your cart is empty.")]));
  if (!state.cart.length) { $("#cart-complete").replaceChildren(h("p", { class: "empty" }, "Add something to see what goes with it.")); return; }
  try {
    const r = await api("/carts/complete", { method: "POST", body: JSON.stringify({ items: state.cart.map((x) => x.id), k: 8 }) });
    const hits = diversify(r.hits, 4, { perCategory: 4, perParent: 4, perBrand: 4, perReason: 99, exclude: state.cart.map((x) => x.product.title) });
    fill("#cart-complete", hits, "cart", r.reason === "no purchase signal for these items yet"
      ? "No purchase data yet for these items, so nothing to suggest." : "Nothing to add.", { list: r });
  } catch (e) { $("#cart-complete").replaceChildren(h("p", { class: "empty" }, `unavailable (${e.message})`)); }
}

// -- search with facets
const FACET_NAMES = { category: "Category", brand: "Brand", price: "Price", rating: "Rating", in_stock: "Availability" };

function facetValueLabel(name, value) {
  if (name === "price") {
    const [lo, hi] = value.split("-");
    return value.endsWith("+") ? `${value.slice(0, -1)} and over` : `${lo} – ${hi}`;
  }
  if (name === "rating") return `${value.replace("+", "")} stars & up`;
  if (name === "in_stock") return value === "true" ? "In stock" : "Out of stock";
  return value;
}

function facetGroups(info) {
  // [name, label, [[value, count], ...]]; attributes become one group each
  const f = info.facets || {};
  const groups = [];
  const sorted = (obj) => Object.entries(obj || {}).filter(([v, n]) => v && n > 0);
  for (const name of ["category", "brand", "price", "rating", "in_stock"]) {
    let vals = sorted(f[name]);
    if (name === "in_stock") vals = vals.filter(([v]) => v === "true");
    if (name === "category" || name === "brand") vals.sort((a, b) => b[1] - a[1]);
    if (vals.length) groups.push([name, FACET_NAMES[name], vals.slice(0, 10)]);
  }
  for (const [attr, vals] of Object.entries(f.attributes || {}).slice(0, 6)) {
    const v = sorted(vals);
    const numeric = v.every(([x]) => /^-?\d+(\.\d+)?$/.test(x));
    v.sort(numeric ? (a, b) => Number(a[0]) - Number(b[0]) : (a, b) => b[1] - a[1]);
    if (v.length) groups.push(["attr:" + attr, label(attr), v.slice(0, 8)]);
  }
  return groups;
}

function filterLabel(key, value) {
  if (key.startsWith("attr:")) return `${label(key.slice(5))}: ${value}`;
  return `${FACET_NAMES[key] || label(key)}: ${facetValueLabel(key, value)}`;
}

function renderFacets(info) {
  const box = $("#facets");
  const groups = facetGroups(info);
  box.replaceChildren();
  for (const [name, title, vals] of groups) {
    const list = h("ul", { class: "facet-list" });
    for (const [value, n] of vals) {
      const on = state.filters[name] === value;
      list.append(h("li", {}, h("button", { class: "facet" + (on ? " on" : ""), type: "button", "data-facet": name,
        "data-value": value, "aria-pressed": on ? "true" : "false",
        onclick: () => { if (on) delete state.filters[name]; else state.filters[name] = value; runSearch(); } },
      h("span", {}, facetValueLabel(name, value)), h("span", { class: "n" }, String(n)))));
    }
    box.append(h("div", { class: "facet-group", "data-group": name }, h("h2", {}, title), list));
  }
  $("#facets-box").hidden = !groups.length;
  $("#view-search .layout").classList.toggle("no-facets", !groups.length);
  if (window.matchMedia("(max-width: 760px)").matches) $("#facets-details").open = false;
}

function searchParams() {
  const params = new URLSearchParams({ q: state.q, k: "24" });
  if (state.user) params.set("user_id", state.user);
  for (const [k, v] of Object.entries(state.filters)) {
    if (k.startsWith("attr:")) params.append("attr", `${k.slice(5)}:${v}`);
    else if (k === "price") {
      const [lo, hi] = v.replace("+", "-").split("-");
      params.set("price_min", lo);
      // buckets are [lo, hi): the filter is inclusive, so stop a cent below the next bucket
      if (hi) params.set("price_max", String(Math.max(Number(lo), Number(hi) - 0.01)));
    } else if (k === "rating") params.set("rating_min", v.replace("+", ""));
    else params.set(k, v);
  }
  return params;
}

function constraintText(filters) {
  const p = filters.price || {};
  return p.min !== undefined || p.max !== undefined ? priceRange(p.min, p.max) : Object.keys(filters).join(", ");
}

function renderUnderstood(q, info) {
  // what the search service understood (info.query), in shopper words: no internal attribute names
  const parsed = info.query || {};
  const parts = [];
  const fixes = Object.entries(parsed.corrections || {});
  if (fixes.length) {
    let corrected = q;
    for (const [a, b] of fixes) corrected = corrected.replace(new RegExp(`\\b${a.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`, "i"), b);
    parts.push(h("span", {}, "Showing results for ", h("b", { id: "corrected" }, corrected), ". "));
  }
  const c = parsed.constraints || {};
  const understood = [];
  if (c.price) understood.push(`price ${priceRange(c.price.min, c.price.max)}`);
  if (c.brand) understood.push(`brand ${c.brand}`);
  if (c.color) understood.push(`colour ${c.color}`);
  if (c.size) understood.push(`size ${c.size}`);
  if (understood.length) parts.push(h("span", {}, "Understood: ", h("b", { id: "understood-terms" }, understood.join(", ")), ". "));
  if (typeof info.total === "number" && info.total) parts.push(h("span", {}, `${info.total} result${info.total === 1 ? "" : "s"}.`));
  $("#understood").replaceChildren(...parts);
}

function renderNote(q, info) {
  const box = $("#search-note");
  const note = info.constraint_note;
  const kids = [];
  if (note && note.removed) {
    const what = constraintText(note.filters);
    const show = (text) => h("button", { type: "button", class: "ghost", id: "show-unpriced",
      onclick: () => { location.hash = "#/search/" + encodeURIComponent(note.query); } }, text);
    if (note.no_price) {
      kids.push(h("p", { id: "constraint-note" }, `${note.no_price} of the best matches for “${note.query}”`
        + `${note.category ? ` (mostly ${note.category})` : ""} have no price, so “${what}” left them out.`));
      kids.push(show(`Search “${note.query}” without the price limit`));
    } else {
      kids.push(h("p", { id: "constraint-note" }, `“${what}” left out ${note.removed} of the best matches for “${note.query}”: they cost more.`));
      kids.push(show(`Search “${note.query}” at any price`));
    }
  }
  if (info.low_confidence) {
    kids.push(h("p", { id: "low-confidence" }, `No product matches the words “${q}”. These are the closest in meaning; they might not be what you want.`));
  }
  box.replaceChildren(...kids);
  box.hidden = !kids.length;
}

function renderZero(q, info) {
  const box = $("#zero");
  if (!info.zero_results) { box.hidden = true; box.replaceChildren(); return; }
  const sugg = info.suggestions || [];
  const cats = info.popular_categories || [];
  const filtered = Object.keys(state.filters).length > 0;
  box.replaceChildren(...[
    h("h2", {}, `No results for “${q}”`),
    filtered ? h("p", {}, "Your filters may be too narrow. ",
      h("button", { type: "button", class: "link", onclick: () => { state.filters = {}; runSearch(); } }, "Clear all filters")) : null,
    sugg.length ? h("p", { class: "suggest" }, "Did you mean ",
      ...sugg.flatMap((s, i) => [i ? ", " : "", h("a", { href: "#/search/" + encodeURIComponent(s) }, s)]), "?")
      : h("p", {}, "Check the spelling, or try a more general word."),
    cats.length ? h("div", {}, h("h3", {}, "Popular categories"),
      h("div", { class: "chips" }, ...cats.map((c) => h("a", { class: "chip", href: "#/category/" + encodeURIComponent(c.name) }, c.name)))) : null,
  ].filter(Boolean));
  box.hidden = false;
}

async function runSearch() {
  const q = state.q;
  if (!q) return;
  $("#search-title").textContent = state.filters.category && q === state.filters.category ? q : `Search: ${q}`;
  $("#active-filters").replaceChildren(...Object.entries(state.filters).map(([k, v]) =>
    h("button", { class: "chip", type: "button", "aria-label": `Remove filter ${filterLabel(k, v)}`,
      onclick: () => { delete state.filters[k]; runSearch(); } }, filterLabel(k, v), h("span", { "aria-hidden": "true" }, " ×"))));
  try {
    const r = await api("/search?" + searchParams().toString());
    renderUnderstood(q, r);
    renderNote(q, r);
    renderFacets(r);
    renderZero(q, r);
    if (r.zero_results) {  // a zero-result search is an impression too (of nothing)
      $("#results").replaceChildren(); whenSeen($("#results"), () => impression(r, [], q));
    }
    else fill("#results", r.hits, "search", `No results for “${q}”.`, { list: r, query: q });
  } catch (e) {
    $("#results").replaceChildren(h("p", { class: "empty" }, `Search failed: ${e.message}`));
  }
  // what the page shows now answers this query (tests and screen readers wait on it)
  const view = $("#view-search");
  view.dataset.q = q; view.dataset.done = String(Number(view.dataset.done || 0) + 1);
}

// -- product page
function attributesTable(p) {
  const rows = Object.entries(p.attributes || {}).filter(([, v]) => String(v).trim());
  if (!rows.length) return null;
  return h("table", { class: "attrs" }, h("caption", {}, "Specifications"),
    h("tbody", {}, ...rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, label(k)), h("td", {}, v)))));
}

async function showItem(id) {
  const detail = $("#item-detail");
  let p;
  try { p = await api("/items/" + encodeURIComponent(id)); } catch (e) { detail.replaceChildren(h("p", { class: "empty" }, e.message)); return; }
  state.item = p;
  $("#view-item").dataset.id = p.id;  // the page now shows this product
  sendEvent("view", id);
  rememberViewed(p);
  const qty = h("input", { id: "qty-main", type: "number", min: "1", max: "99", value: "1", inputmode: "numeric" });
  detail.replaceChildren(thumb(p), h("div", { class: "info" },
    h("nav", { class: "crumbs", "aria-label": "Category" }, ...(p.category || []).flatMap((c, i) => [i ? " › " : "",
      h("a", { href: "#/category/" + encodeURIComponent(c) }, c)])),
    h("h1", {}, p.title),
    h("div", { class: "meta" }, [p.brand, p.rating ? `${p.rating.toFixed(1)} ★ (${p.rating_count})` : ""].filter(Boolean).join(" · ")),
    priceEl(p, "price big"),
    h("p", { class: p.in_stock ? "stock in" : "stock out" }, p.in_stock ? "In stock" : "Out of stock"),
    h("div", { class: "buy" }, h("label", { for: "qty-main" }, "Quantity"), qty,
      h("button", { id: "add-main", type: "button", onclick: () => addToCart(p, Math.max(1, parseInt(qty.value, 10) || 1)) }, "Add to cart")),
    p.description ? h("p", { class: "desc" }, p.description.slice(0, 700)) : null,
    attributesTable(p)));
  const safe = async (sel, fn, surface, empty) => {
    try {
      const r = await fn();
      // every card would say "Similar to <this item>": the heading says it once
      fill(sel, r.hits, surface, r.reason === "no purchase signal for these items yet" ? empty.noSignal : empty.none,
        { reason: false, list: r });
    } catch (e) { $(sel).replaceChildren(h("p", { class: "empty" }, `unavailable (${e.message})`)); }
    $(sel).dataset.for = id;  // the list now belongs to this product
  };
  safe("#similar", () => api(`/items/${encodeURIComponent(id)}/substitutes?k=8`), "similar",
    { none: "No similar items found." });
  safe("#complements", () => api(`/items/${encodeURIComponent(id)}/complements?k=8`), "complements",
    { none: "Nothing is often bought with this item yet.",
      noSignal: "Nobody has bought this item yet, so we cannot say what goes with it." });
  const budget = $("#bundle-budget");
  budget.value = "";
  budget.disabled = !hasPrice(p);
  budget.title = hasPrice(p) ? "" : "This item has no price, so a budget cannot be checked";
  loadBundle(id, null);
}

async function loadBundle(id, budget) {
  const box = $("#bundle");
  const anchorP = state.item;
  try {
    const body = { items: [id], size: 3 };
    if (budget) body.budget = budget;
    const b = await api("/bundles", { method: "POST", body: JSON.stringify(body) });
    if (!b.hits.length) {
      const why = b.reason === "no purchase signal for these items yet"
        ? "Nobody has bought this item with others yet, so there is no bundle to suggest."
        : b.reason ? `No bundle: ${b.reason}.` : "No bundle for this item.";
      box.replaceChildren(h("p", { class: "empty" }, why));
      whenSeen(box, () => impression(b, []));
      box.dataset.for = id;
      return;
    }
    const anchor = { id, score: 1, source: "anchor", reason: "This item", product: anchorP };
    const all = [anchor, ...b.hits];
    const parts = [];
    const list = listOf(b);
    const fromOf = (i) => (i && list ? Object.assign({ position: i }, list) : null);
    all.forEach((x, i) => { if (i) parts.push(h("span", { class: "plus", "aria-hidden": "true" }, "+")); parts.push(card(x, "bundle", { from: fromOf(i) })); });
    whenSeen(box, () => impression(b, b.hits));
    const summary = [];
    if (b.total_price !== null && b.total_price !== undefined) {
      summary.push(h("p", { class: "price", id: "bundle-total" }, `Bundle total ${money(b.total_price, anchorP.currency)}`));
      if (b.budget_left !== null && b.budget_left !== undefined) summary.push(h("p", { class: "saving", id: "bundle-saving" }, `${money(b.budget_left, anchorP.currency)} under your budget of ${money(b.budget, anchorP.currency)}`));
    } else {
      const n = (b.price_unknown || []).length;
      summary.push(h("p", { class: "price unknown", id: "bundle-total" },
        `Total unknown: ${n} of ${all.length} items ${n === 1 ? "has" : "have"} no price`
        + (b.known_price_total ? ` (the priced ones come to ${money(b.known_price_total, anchorP.currency)})` : "")));
    }
    summary.push(h("button", { type: "button", class: "ghost", id: "bundle-add",
      onclick: () => { all.forEach((x, i) => addToCart(x.product, 1, fromOf(i))); } }, "Add all to cart"));
    box.replaceChildren(h("div", { class: "bundle-items" }, ...parts), h("div", { class: "bundle-summary" }, ...summary));
  } catch (e) { box.replaceChildren(h("p", { class: "empty" }, `unavailable (${e.message})`)); }
  box.dataset.for = id;
}

// -- routing
function show(view) {
  for (const v of ["home", "search", "item"]) $(`#view-${v}`).hidden = v !== view;
  flushSeen();
}

function route() {
  const hash = location.hash || "#/";
  const arg = (prefix) => decodeURIComponent(hash.slice(prefix.length));
  if (hash.startsWith("#/item/")) {
    // the previous product's lists are replaced by this one's: they were never seen
    for (const el of [...exposures.pending.keys()]) if ($("#view-item").contains(el)) exposures.pending.delete(el);
    show("item"); window.scrollTo(0, 0);
    delete $("#view-item").dataset.id;
    showItem(arg("#/item/"));
  } else if (hash.startsWith("#/search/")) {
    show("search");
    const q = arg("#/search/");
    if (q !== state.q || state.filters.category === state.q) state.filters = {};
    state.q = q; $("#q").value = q;
    runSearch();
  } else if (hash.startsWith("#/category/")) {
    show("search");
    const c = arg("#/category/");
    state.q = c; state.filters = { category: c }; $("#q").value = "";
    runSearch();
  } else {
    show("home");
    loadHome();
  }
}

async function init() {
  let cfg = {};
  try { cfg = await api("/storefront/config"); } catch (e) { cfg = {}; }
  state.key = cfg.demo_key || localStorage.getItem("shopsense_key");
  if (!state.key) notice("No API key: browsing works, but events are not recorded. Start the server with --demo, or run localStorage.setItem('shopsense_key', '<write key>').");
  state.cart = load(STORE.cart, []).filter((x) => x && x.id && x.product && x.qty > 0);
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
  $("#bundle-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = parseFloat($("#bundle-budget").value);
    if (state.item) loadBundle(state.item.id, Number.isFinite(v) && v > 0 ? v : null);
  });
  $("#cart-btn").addEventListener("click", () => { if ($("#cart").hidden) { openCart(); renderCart(); } else closeCart(); });
  $("#cart-close").addEventListener("click", closeCart);
  $("#backdrop").addEventListener("click", closeCart);
  document.addEventListener("keydown", (e) => {
    if ($("#cart").hidden) return;
    if (e.key === "Escape") { e.preventDefault(); closeCart(); return; }
    if (e.key === "Tab") { // keep focus inside the open drawer
      const items = [...$("#cart").querySelectorAll("a[href], button:not([disabled]), input, select")].filter((x) => x.offsetParent !== null);
      if (!items.length) return;
      const first = items[0], last = items[items.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    }
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("pagehide", () => flushExposures(true));
  renderCart();
  route();
  loadRecs();
}

init();
