// The website widget: <script src="https://ROUTER/widget.js" data-account="shop" async></script>
// (and data-inbox="inb_…" for one of the account's web chat inboxes) puts a launcher bubble on the page that opens the router's chat in an iframe (/chat/embed).
// It starts only where the router allows it (GET /widget/config answers for the page's origin),
// and talks with its iframe by postMessage, to the router's origin only and from it only.
// API: window.omnirouter.open(), .close(), .setUser({name, email, phone, user_id, user_hash}), .setLabel(name),
// .on("message" | "open" | "close" | "ready", fn).
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.omnirouter) return;
  const router = new URL(script.src).origin;
  const account = script.dataset.account || "";
  const inbox = script.dataset.inbox || "";
  const pick = (lang) => (lang || "").toLowerCase().split("-")[0];
  const known = ["en", "lv", "ru"];
  const lang = [script.dataset.lang, document.documentElement.lang, navigator.language].map(pick).find((l) => known.includes(l)) || "";
  const tokenKey = `omnirouter.visitor.${account || "default"}${inbox ? `.${inbox}` : ""}`;
  const handlers = { message: [], open: [], close: [], ready: [] };
  const queued = []; // what the page asked before the chat was ready
  let frame = null;
  let launcher = null;
  let badge = null;
  let panel = null;
  let loaded = false; // the chat's script runs: it takes what the page said, and the keyboard
  let opened = false;
  let unread = 0;
  let words = {}; // English -> the page's language, from the router
  const t = (english) => words[english] || english;

  function emit(kind, data) {
    for (const fn of handlers[kind] || []) {
      try { fn(data); } catch (error) { setTimeout(() => { throw error; }); }
    }
  }

  function post(message) {
    if (loaded && frame) frame.contentWindow.postMessage(message, router);
    else queued.push(message);
  }

  function showBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 9 ? "9+" : String(unread);
    launcher.setAttribute("aria-label", unread ? `${t("Open chat")} (${t("unread messages:")} ${unread})` : t("Open chat"));
  }

  function open() {
    if (!panel || opened) return;
    opened = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    showBadge();
    if (loaded) frame.focus(); // else once it is: focused while loading, keys typed a moment later were lost
    post({ type: "omnirouter:open" });
    emit("open");
  }

  function close() {
    if (!panel || !opened) return;
    opened = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
    emit("close");
  }

  function onMessage(event) {
    if (!frame || event.origin !== router || event.source !== frame.contentWindow) return; // only our chat
    const data = event.data || {};
    switch (data.type) {
      case "omnirouter:loaded":
        loaded = true;
        if (opened) frame.focus();
        while (queued.length) frame.contentWindow.postMessage(queued.shift(), router);
        frame.contentWindow.postMessage({ type: "omnirouter:settled" }, router); // all the page said so far
        break;
      case "omnirouter:ready":
        emit("ready");
        break;
      case "omnirouter:token": // the visitor's token, kept on this site: the chat finds them again
        try { localStorage.setItem(tokenKey, String(data.token)); } catch (error) { /* not kept */ }
        break;
      case "omnirouter:close":
        close();
        break;
      case "omnirouter:message":
        if (!opened) { unread += 1; showBadge(); }
        emit("message", data.message);
        break;
    }
  }

  // whether dark text reads better than white on the account's colour (#rrggbb)
  function light(hex) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.205; // where dark text contrasts more than white
  }

  function style(color) {
    const css = document.createElement("style");
    css.textContent = `
.omnirouter-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;border:0;border-radius:50%;background:${color};color:${light(color) ? "#111827" : "#fff"};cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);font:600 24px/56px system-ui,sans-serif;padding:0}
.omnirouter-launcher:focus-visible{outline:3px solid #111827;outline-offset:3px}
.omnirouter-badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#b42318;color:#fff;font:700 12px/22px system-ui,sans-serif}
.omnirouter-badge[hidden],.omnirouter-panel[hidden]{display:none}
.omnirouter-panel{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:380px;height:min(600px,calc(100vh - 110px));border-radius:14px;overflow:hidden;box-shadow:0 8px 30px rgba(0,0,0,.25);background:#fff}
.omnirouter-panel iframe{width:100%;height:100%;border:0;display:block}
@media (max-width:480px){.omnirouter-panel{inset:0;width:100%;height:100%;border-radius:0}}`;
    document.head.appendChild(css);
  }

  function build(config) {
    style(config.color);
    launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "omnirouter-launcher";
    launcher.setAttribute("aria-controls", "omnirouter-panel");
    launcher.setAttribute("aria-expanded", "false");
    launcher.innerHTML = // a speech bubble (no emoji: not every system has a font with it)
      '<svg aria-hidden="true" focusable="false" width="28" height="28" viewBox="0 0 24 24" style="vertical-align:middle">' +
      '<path fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
    badge = document.createElement("span");
    badge.className = "omnirouter-badge";
    badge.setAttribute("aria-hidden", "true");
    launcher.appendChild(badge);
    showBadge();
    launcher.addEventListener("click", () => (opened ? close() : open()));

    panel = document.createElement("div");
    panel.className = "omnirouter-panel";
    panel.id = "omnirouter-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", config.title || t("Chat"));
    frame = document.createElement("iframe");
    frame.title = config.title || t("Chat");
    const src = new URL("/chat/embed", router);
    if (account) src.searchParams.set("account", account);
    if (inbox) src.searchParams.set("inbox", inbox);
    if (lang) src.searchParams.set("lang", lang);
    src.searchParams.set("parent", location.origin);
    try {
      const token = localStorage.getItem(tokenKey);
      if (token) src.hash = new URLSearchParams({ token }).toString(); // never sent to a server
    } catch (error) { /* a new visitor */ }
    frame.src = src.href;
    panel.appendChild(frame);
    panel.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
    document.body.appendChild(panel);
    document.body.appendChild(launcher);
    window.addEventListener("message", onMessage);
  }

  window.omnirouter = {
    open,
    close,
    setUser(user) {
      const clean = {};
      for (const key of ["name", "email", "phone", "user_id", "user_hash"]) if (user && typeof user[key] === "string") clean[key] = user[key];
      post({ type: "omnirouter:user", user: clean });
    },
    setLabel(name) { if (typeof name === "string") post({ type: "omnirouter:label", label: name }); },
    on(kind, fn) { if (handlers[kind] && typeof fn === "function") handlers[kind].push(fn); },
  };

  const config = new URL("/widget/config", router);
  if (account) config.searchParams.set("account", account);
  if (inbox) config.searchParams.set("inbox", inbox);
  config.searchParams.set("lang", lang);
  fetch(config, { credentials: "omit" })
    .then((response) => (response.ok ? response.json() : { allowed: false }))
    .then((found) => {
      if (!found.allowed) {
        console.warn(`omnirouter: this site (${location.origin}) may not embed the chat of account "${account}"`);
        return;
      }
      words = found.words || {};
      const start = () => build(found);
      if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
    })
    .catch(() => console.warn("omnirouter: the chat could not be reached"));
})();
