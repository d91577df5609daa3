// shopsense shopping assistant: a self-contained chat panel for the storefront (or any page
// of this server). It adds its own floating button and panel, talks to POST /assistant and
// shows the products an answer cites as cards. Plain JS, no build step, nothing external.
(function () {
  "use strict";
  if (window.__shopsenseAssistant) return;
  window.__shopsenseAssistant = true;

  const SESSION_KEY = "shopsense_assistant_session";
  const SUGGESTIONS = ["I need a printer for a small office", "What is your return policy?",
    "How long does shipping take?"];
  let key = null;
  let busy = false;

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  }

  function sessionId() {
    let sid = null;
    try { sid = sessionStorage.getItem(SESSION_KEY); } catch (e) { sid = null; }
    if (!sid) {
      sid = "web-" + Math.random().toString(36).slice(2, 12) + Date.now().toString(36);
      try { sessionStorage.setItem(SESSION_KEY, sid); } catch (e) { /* private mode: one page only */ }
    }
    return sid;
  }

  function newSession() {
    try { sessionStorage.removeItem(SESSION_KEY); } catch (e) { /* ignore */ }
  }

  async function loadKey() {
    try {
      const r = await fetch("/storefront/config");
      if (r.ok) { const cfg = await r.json(); key = cfg.demo_key || null; }
    } catch (e) { key = null; }
    if (!key) { try { key = localStorage.getItem("shopsense_key"); } catch (e) { key = null; } }
  }

  function currentUser() {
    const sel = document.querySelector("#user");
    return sel && sel.value ? sel.value : null;
  }

  function money(p) {
    return p && p.price !== null && p.price !== undefined
      ? p.price.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " " + (p.currency || "")
      : "no price listed";
  }

  function initials(p) {
    const words = (p.title || p.id || "?").replace(/[^\p{L}\p{N} ]/gu, " ").split(/\s+/).filter(Boolean);
    return words.slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  }

  function card(p) {
    const thumb = el("div", { class: "ssa-thumb", "aria-hidden": "true" }, initials(p));
    if (p.image_url) {
      const img = el("img", { src: p.image_url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
      img.addEventListener("load", () => img.classList.add("ok"));  // initials show until it loads
      img.addEventListener("error", () => img.remove());
      thumb.append(img);
    }
    const leaf = p.category && p.category.length ? p.category[p.category.length - 1] : "";
    return el("a", { class: "ssa-card", href: "#/item/" + encodeURIComponent(p.id), "data-id": p.id,
                     title: p.title },
      thumb,
      el("span", { class: "ssa-card-title" }, p.title),
      el("span", { class: "ssa-card-meta" }, [p.brand, leaf].filter(Boolean).join(" · ")),
      el("span", { class: "ssa-card-price" }, money(p)),
      el("span", { class: "ssa-card-stock" + (p.in_stock ? "" : " out") }, p.in_stock ? "in stock" : "out of stock"));
  }

  function table(t) {
    const head = el("tr", {}, el("th", {}, ""), t.columns.map((c) => el("th", { scope: "col" }, c)));
    const rows = t.rows.map((r) => {
      const differs = new Set(r.slice(1)).size > 1;
      return el("tr", { class: differs ? "ssa-diff" : "" }, el("th", { scope: "row" }, r[0]),
        r.slice(1).map((v) => el("td", {}, v)));
    });
    return el("div", { class: "ssa-table-wrap" }, el("table", { class: "ssa-table" }, el("thead", {}, head),
      el("tbody", {}, rows)));
  }

  function facts(ans) {
    const cited = (ans.facts || []).filter((f) => f.kind === "field" || f.kind === "absent");
    if (!cited.length || ans.intent === "search" || ans.intent === "refine") return null;
    const items = cited.slice(0, 8).map((f) => el("li", {},
      el("b", {}, (f.label || f.field || "") + ": "), f.kind === "absent" ? "not listed" : f.value));
    return el("details", { class: "ssa-facts" }, el("summary", {}, "Cited catalogue fields"), el("ul", {}, items));
  }

  function botMessage(ans) {
    const box = el("div", { class: "ssa-msg bot", "data-intent": ans.intent });
    const cards = !ans.table && ans.products && ans.products.length > 1;
    // a list answer's numbered lines are the cards below it: show its first line only
    const text = cards ? ans.text.split("\n")[0].replace(/ (The best matches|It is):$/, "") : ans.text;
    box.append(el("div", { class: "ssa-text", title: cards ? ans.text : null }, text));
    const cons = ans.understood && ans.understood.described;
    if (cons && cons.length) {
      box.append(el("div", { class: "ssa-chips", "aria-label": "what I understood" },
        cons.map((c) => el("span", { class: "ssa-chip" }, c))));
    }
    if (ans.table) box.append(table(ans.table));
    else if (ans.products && ans.products.length) {
      box.append(el("div", { class: "ssa-cards" }, ans.products.slice(0, 8).map(card)));
    }
    for (const l of ans.links || []) {
      box.append(el("a", { class: "ssa-link", href: l.href, target: "_blank", rel: "noopener" }, "Read: " + l.title));
    }
    const f = facts(ans);
    if (f) box.append(f);
    if (ans.generated) box.append(el("div", { class: "ssa-note" }, "Reworded by a language model; checked against the catalogue."));
    return box;
  }

  function build() {
    const log = el("div", { class: "ssa-log", role: "log", "aria-live": "polite", "aria-label": "conversation" });
    const input = el("input", { class: "ssa-input", type: "text", maxlength: "1000", autocomplete: "off",
      placeholder: "Ask about products, prices, returns…", "aria-label": "message to the shopping assistant" });
    const send = el("button", { class: "ssa-send", type: "submit" }, "Send");
    const form = el("form", { class: "ssa-form" }, input, send);
    const suggest = el("div", { class: "ssa-suggest" }, SUGGESTIONS.map((s) =>
      el("button", { type: "button", class: "ssa-suggestion", onclick: () => ask(s) }, s)));
    const reset = el("button", { type: "button", class: "ssa-reset", title: "start a new conversation",
      onclick: () => { newSession(); log.replaceChildren(greeting()); suggest.hidden = false; input.focus(); } }, "New chat");
    const close = el("button", { type: "button", class: "ssa-close", "aria-label": "close the assistant",
      onclick: () => toggle(false) }, "×");
    const panel = el("section", { id: "ss-assistant", class: "ssa-panel", role: "dialog", "aria-label": "Shopping assistant",
      hidden: "" },
      el("header", { class: "ssa-head" }, el("h2", {}, "Shopping assistant"), reset, close),
      log, suggest, form);
    const fab = el("button", { id: "ss-assistant-open", class: "ssa-fab", type: "button", "aria-controls": "ss-assistant",
      "aria-expanded": "false" }, bubble(), " Ask the shop");

    // a speech bubble drawn as SVG: the emoji it replaces needs a colour-emoji font, which
    // many machines (headless Chromium on Debian among them) lack, and showed an empty box
    function bubble() {
      const NS = "http://www.w3.org/2000/svg";
      const icon = document.createElementNS(NS, "svg");
      for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "18", height: "18", "aria-hidden": "true",
        focusable: "false", class: "ssa-icon" })) icon.setAttribute(k, v);
      const path = document.createElementNS(NS, "path");
      path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
      path.setAttribute("fill", "currentColor");
      icon.append(path);
      return icon;
    }

    function greeting() {
      return el("div", { class: "ssa-msg bot" }, el("div", { class: "ssa-text" },
        "Hi! I answer from this shop's catalogue and policies only. Ask me to find something, then refine it: " +
        "“cheaper”, “only HP”, “in black”, “show me the second one”, “compare the first two”."));
    }

    function toggle(open) {
      panel.hidden = !open;
      fab.setAttribute("aria-expanded", String(open));
      fab.hidden = open;
      if (open) input.focus();
    }

    async function ask(text) {
      text = (text || "").trim();
      if (!text || busy) return;
      busy = true; send.disabled = true; suggest.hidden = true;
      log.append(el("div", { class: "ssa-msg me" }, el("div", { class: "ssa-text" }, text)));
      const wait = el("div", { class: "ssa-msg bot ssa-wait" }, el("div", { class: "ssa-text" }, "…"));
      log.append(wait); log.scrollTop = log.scrollHeight;
      const body = { session_id: sessionId(), text };
      const user = currentUser();
      if (user) body.user_id = user;
      const headers = { "Content-Type": "application/json" };
      if (key) headers["X-API-Key"] = key;
      try {
        const r = await fetch("/assistant", { method: "POST", headers, body: JSON.stringify(body) });
        const ans = await r.json().catch(() => null);
        if (!r.ok) throw new Error(ans && ans.message ? ans.message : r.statusText);
        wait.replaceWith(botMessage(ans));
      } catch (e) {
        wait.replaceWith(el("div", { class: "ssa-msg bot ssa-error" }, el("div", { class: "ssa-text" },
          "Sorry, that did not work: " + e.message)));
      } finally {
        busy = false; send.disabled = false;
        log.scrollTop = log.scrollHeight;
      }
    }

    form.addEventListener("submit", (e) => { e.preventDefault(); const t = input.value; input.value = ""; ask(t); });
    fab.addEventListener("click", () => toggle(true));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !panel.hidden) toggle(false); });
    log.append(greeting());
    document.body.append(fab, panel);
  }

  function start() { build(); loadKey(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
