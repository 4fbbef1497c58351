// The web chat page: one WebSocket to the router, messages kept until acknowledged.
// Every text is inserted with textContent: nothing a customer or agent writes is parsed as HTML.
// The page's own words come from /chat/words in the visitor's language (English until they do).
// At /chat/embed it is the website widget's iframe (widget.js): in the account's look, and talking
// by postMessage with the embedding page only (the origin in ?parent=, which the router's
// frame-ancestors allows as the only site that may frame this page).
(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const account = params.get("account") || "";
  const inbox = params.get("inbox") || ""; // one of the account's web chat inboxes (none: its first)
  const chatKey = (account || "default") + (inbox ? `.${inbox}` : "");
  const tokenKey = `omnirouter.visitor.${chatKey}`;
  const pendingKey = `omnirouter.pending.${chatKey}`;
  const log = document.getElementById("log");
  const empty = document.getElementById("empty");
  const statusEl = document.getElementById("status");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const notice = document.getElementById("notice");
  const shown = new Map(); // message_id or client id -> <li>
  // a browser may refuse storage to a page framed by another site: then it lasts as long as the page,
  // and the widget keeps the visitor's token on its own site (sent here in #token=, told back below)
  const kept = (() => {
    try {
      localStorage.getItem(tokenKey);
      sessionStorage.getItem(pendingKey);
      return { local: localStorage, session: sessionStorage };
    } catch (error) {
      const memory = () => { const m = new Map(); return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)) }; };
      return { local: memory(), session: memory() };
    }
  })();
  const handed = new URLSearchParams(location.hash.slice(1)).get("token");
  if (location.pathname === "/chat/embed" && handed && !kept.local.getItem(tokenKey)) kept.local.setItem(tokenKey, handed);
  let pending = JSON.parse(kept.session.getItem(pendingKey) || "[]"); // [{id, text}]
  let socket = null;
  let retryDelay = 500;
  let words = {}; // English -> the visitor's language
  const embedded = location.pathname === "/chat/embed";
  const parentOrigin = embedded ? params.get("parent") || "" : "";
  let user = {}; // what the embedding page said of the visitor (omnirouter.setUser)
  let label = ""; // the label it asked for (omnirouter.setLabel): sent again once a conversation exists
  let announced = false;
  // messages wait until the embedding page has said who the visitor is (its queued setUser, then
  // "settled") and, for a user it vouches for, until the router has identified them: sent sooner,
  // they would land in an anonymous conversation the user's chat then no longer shows
  let parentSettled = !embedded;
  let asked = false; // the page opened the chat: its first field takes the keyboard (once it can)
  let identityRefused = false;
  let look = {}; // the account's widget (/widget/config): its pre-chat form, whether it is offline now
  let mode = "chat"; // chat | prechat (asked before the first message) | offline (out of hours) | sent
  const prechatForm = document.getElementById("prechat");
  const offlineForm = document.getElementById("offline");
  const offlineSent = document.getElementById("offline-sent");
  // the visitor forms' errors, as the router names them (visitor_forms.py), in the visitor's words
  const FORM_ERRORS = {
    name_missing: "Please write your name.",
    bad_email: "Please write an e-mail address like name@example.com.",
    bad_phone: "Please write a phone number with its country code, like +371 2000 0000.",
    email_or_phone: "Please write your e-mail or phone number.",
    consent_missing: "Please agree to continue.",
    text_missing: "Please write your message.",
  };
  // why the router refused a file (uploads.py), in the visitor's words
  const FILE_ERRORS = {
    too_large: "This file is too large: at most {mb} MB.",
    bad_type: "This kind of file cannot be sent: send an image, a PDF, a text or an Office document.",
    quota: "Files cannot be received right now. Please try again later.",
  };

  function toParent(message) {
    if (embedded && parentOrigin && window.parent !== window) window.parent.postMessage(message, parentOrigin);
  }

  // whether dark text reads better than white on a colour an admin chose (#rrggbb)
  function light(hex) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.205; // where dark text contrasts more than white
  }

  async function loadLook() {
    const url = new URL("/widget/config", location.href);
    if (account) url.searchParams.set("account", account);
    if (inbox) url.searchParams.set("inbox", inbox);
    try {
      const response = await fetch(url, { credentials: "omit" });
      if (!response.ok) return;
      look = await response.json();
      document.documentElement.style.setProperty("--accent", look.color);
      document.documentElement.style.setProperty("--mine", look.color);
      if (light(look.color)) document.documentElement.style.setProperty("--on-accent", "#111827");
      if (look.title) { document.querySelector(".chat__header h1").textContent = look.title; document.title = look.title; }
      if (look.greeting) document.querySelector("#empty strong").textContent = look.greeting;
    } catch (error) {
      // the page keeps its own look
    }
  }

  function onParent(event) {
    if (!embedded || event.source !== window.parent || event.origin !== parentOrigin) return; // nobody else
    const data = event.data || {};
    if (data.type === "omnirouter:open") { asked = true; focusFirst(); }
    else if (data.type === "omnirouter:settled") settle();
    else if (data.type === "omnirouter:user" && data.user) { user = data.user; identify(); }
    else if (data.type === "omnirouter:label" && typeof data.label === "string") { label = data.label; sendLabel(); }
  }

  // a user the site's server vouches for (user_id + user_hash): the router answers with their own
  // visitor token, the same on every device, and the page reconnects as them
  let identified = false;
  function identify() {
    if (identified || !user.user_id || !user.user_hash || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "identify", user_id: user.user_id, user_hash: user.user_hash }));
  }

  function becomeUser(token) {
    identified = true;
    if (token === kept.local.getItem(tokenKey)) { flush(); return; } // already connected as them
    kept.local.setItem(tokenKey, token);
    toParent({ type: "omnirouter:token", token });
    for (const li of [...log.querySelectorAll(".msg")]) li.remove();
    shown.clear();
    empty.hidden = !pending.length;
    for (const item of pending) render({ key: item.id, direction: "in", text: item.text, meta: t("sending…") });
    socket.close(); // and reconnect with their token: the welcome brings their conversations
  }

  function holding() {
    return !parentSettled || (Boolean(user.user_id && user.user_hash) && !identified && !identityRefused);
  }

  function flush() { for (const item of pending) transmit(item); }

  // embedded, the composer opens once the page has said all it had to say and moved the keyboard
  // here: typed sooner, keys could land in the middle of that move and be lost
  function settle() {
    if (parentSettled && !input.disabled) return;
    parentSettled = true;
    input.disabled = false;
    document.getElementById("send").disabled = false;
    if (asked) focusFirst();
    flush();
  }

  function sendLabel() {
    if (label && socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "label", label }));
  }

  function t(english) { return words[english] || english; }

  function translatePage() {
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.textContent.trim());
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.placeholder);
    for (const el of document.querySelectorAll("[data-i18n-aria-label]")) el.setAttribute("aria-label", t(el.getAttribute("aria-label")));
  }

  async function loadWords() {
    const url = new URL("/chat/words", location.href);
    if (params.get("lang")) url.searchParams.set("lang", params.get("lang"));
    try {
      const response = await fetch(url, { credentials: "omit" });
      if (!response.ok) return;
      const found = await response.json();
      words = found.words || {};
      document.documentElement.lang = found.lang || "en";
      translatePage();
    } catch (error) {
      // the page stays in English
    }
  }

  // typing: the agent is told at most every 2 s while the visitor writes; the agent's "typing…"
  // shows until their message comes, or for 6 s
  const typingNote = document.getElementById("typing");
  let typingSent = 0;
  let typingShown = null;
  function tellTyping() {
    const now = Date.now();
    if (now - typingSent < 2000 || !input.value.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    typingSent = now;
    socket.send(JSON.stringify({ type: "typing" }));
  }
  function showTyping(on) {
    clearTimeout(typingShown);
    typingNote.hidden = !on;
    if (on) typingShown = setTimeout(() => { typingNote.hidden = true; }, 6000);
  }

  function savePending() { kept.session.setItem(pendingKey, JSON.stringify(pending)); }

  function setStatus(kind, text) {
    statusEl.className = `status status--${kind}`;
    statusEl.textContent = text;
  }

  function showNotice(text) {
    notice.hidden = !text;
    notice.textContent = text || "";
  }

  // who wrote a reply: the agent by name, else the bot as "Assistant", each with an initial
  function author(sender, agent) {
    if (sender !== "agent" && sender !== "bot") return null;
    const name = sender === "agent" ? agent || t("Agent") : t("Assistant");
    const who = document.createElement("span");
    who.className = "msg__who";
    const initial = document.createElement("span");
    initial.className = "msg__avatar";
    initial.setAttribute("aria-hidden", "true");
    initial.textContent = name.trim().charAt(0).toUpperCase();
    who.append(initial, document.createTextNode(name));
    return who;
  }

  function render({ key, direction, sender, agent, text, options, meta, file }) {
    let li = shown.get(key);
    if (!li) {
      li = document.createElement("li");
      log.appendChild(li);
      shown.set(key, li);
    }
    empty.hidden = true;
    li.replaceChildren();
    li.className = `msg msg--${direction === "in" ? "in" : sender === "system" ? "system" : "out"}`;
    if (direction !== "in" && (sender === "agent" || sender === "bot")) li.classList.add(`msg--${sender}`);
    li.dataset.key = key;
    const who = direction === "in" ? null : author(sender, agent);
    if (who) li.appendChild(who);
    const body = document.createElement("span");
    body.className = "msg__text";
    body.textContent = text;
    li.appendChild(body);
    if (file && typeof file.url === "string" && file.url.startsWith("/webchat/files/")) {
      const link = document.createElement("a");
      link.className = "msg__file";
      link.href = file.url;
      link.target = "_blank";
      link.rel = "noopener";
      if (file.image) {
        const img = document.createElement("img");
        img.src = file.url;
        img.alt = file.name || "";
        link.appendChild(img);
      } else {
        link.textContent = file.name || "file";
        link.setAttribute("download", file.name || "file");
      }
      li.appendChild(link);
    }
    if (meta) {
      const small = document.createElement("span");
      small.className = "msg__meta";
      small.textContent = meta;
      li.appendChild(small);
    }
    if (options && options.length) {
      const box = document.createElement("div");
      box.className = "msg__options";
      for (const option of options) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = option;
        button.addEventListener("click", () => send(option));
        box.appendChild(button);
      }
      li.appendChild(box);
    }
    log.scrollTop = log.scrollHeight;
    return li;
  }

  function renderFrame(m) {
    if (m.type === "resolved") { // a past conversation ended here
      render({ key: `resolved-${m.thread_id}`, direction: "out", sender: "system", text: t("This conversation was resolved") });
      shown.get(`resolved-${m.thread_id}`).classList.add("msg--resolved");
      return;
    }
    // a message the customer wrote is keyed by its client id, so the acked copy replaces the pending one
    const key = m.direction === "in" && m.client_id ? m.client_id : m.message_id;
    render({ key, direction: m.direction, sender: m.sender, agent: m.agent, text: m.text, options: m.options, file: m.file });
  }

  function transmit(item) {
    if (socket && socket.readyState === WebSocket.OPEN && !holding()) {
      const frame = { type: "message", id: item.id, text: item.text };
      if (typeof user.name === "string" && user.name.trim()) frame.name = user.name.trim().slice(0, 80);
      socket.send(JSON.stringify(frame));
    }
  }

  function send(text) {
    text = text.trim();
    if (!text) return;
    const item = { id: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(), text };
    pending.push(item);
    savePending();
    render({ key: item.id, direction: "in", text, meta: t("sending…") });
    transmit(item);
  }

  function connect() {
    setStatus("connecting", t("Connecting…"));
    const url = new URL("/webchat/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (account) url.searchParams.set("account", account);
    if (inbox) url.searchParams.set("inbox", inbox);
    url.searchParams.set("token", kept.local.getItem(tokenKey) || "");
    socket = new WebSocket(url);
    socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      setStatus("offline", t("Offline — reconnecting"));
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    });
  }

  // which of the chat, the pre-chat form and the offline form the visitor sees
  function showMode(next) {
    const box = { chat: form, prechat: prechatForm, offline: offlineForm }[next];
    const appearing = Boolean(box && box.hidden);
    mode = next;
    form.hidden = mode !== "chat";
    prechatForm.hidden = mode !== "prechat";
    offlineForm.hidden = mode !== "offline";
    offlineSent.hidden = mode !== "sent";
    if (appearing && asked) focusFirst(); // the form now shown takes the keyboard
  }

  function focusFirst() {
    const box = { chat: form, prechat: prechatForm, offline: offlineForm }[mode];
    const first = box && [...box.querySelectorAll("input, textarea")].find((el) => !el.closest("[hidden]"));
    if (first) first.focus();
  }

  function chooseMode(welcome) {
    if (mode === "sent") return;
    if (look.offline && welcome.status !== "assigned") {
      document.getElementById("offline-hours-text").textContent = `${look.offline.hours} (${look.offline.timezone})`;
      document.getElementById("offline-hours").hidden = !look.offline.hours;
      showMode("offline");
    } else if (welcome.prechat && look.prechat) {
      const fields = look.prechat.fields;
      for (const field of prechatForm.querySelectorAll("[data-field]")) {
        const name = field.dataset.field;
        field.hidden = name === "consent" ? !look.prechat.consent : !fields.includes(name);
        // every field asked is needed, but with both e-mail and phone asked one of them is enough
        const needed = !field.hidden && !(["email", "phone"].includes(name) && fields.includes("email") && fields.includes("phone"));
        field.querySelector("input").setAttribute("aria-required", String(needed));
      }
      const privacy = document.getElementById("prechat-privacy");
      if (String(look.prechat.privacy_url).startsWith("https://")) privacy.href = look.prechat.privacy_url;
      showMode("prechat");
    } else {
      showMode("chat");
    }
  }

  function clearErrors(box) {
    for (const el of box.querySelectorAll(".chat__error")) { el.hidden = true; el.textContent = ""; }
    for (const el of box.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showFormError(frame) {
    const field = document.getElementById(`${frame.form}-${frame.field}`);
    const error = document.getElementById(`${frame.form}-${frame.field}-error`);
    if (!field || !error) { showNotice(t("That message could not be sent.")); return; }
    error.textContent = t(FORM_ERRORS[frame.code] || "That message could not be sent.");
    error.hidden = false;
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }

  function sendForm(box, frame) {
    clearErrors(box);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
    else showNotice(t("We could not save your message yet — retrying…"));
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        retryDelay = 500;
        chooseMode(frame);
        kept.local.setItem(tokenKey, frame.visitor_token);
        toParent({ type: "omnirouter:token", token: frame.visitor_token });
        setStatus("online", t("Online"));
        showNotice(frame.history_unavailable ? t("Earlier messages cannot be loaded right now.") : "");
        for (const m of frame.history || []) renderFrame(m);
        flush(); // resend whatever was never acknowledged
        if (!announced) { announced = true; toParent({ type: "omnirouter:ready" }); }
        identify();
        break;
      case "ack":
        pending = pending.filter((item) => item.id !== frame.id);
        savePending();
        sendLabel();
        { const li = shown.get(frame.id); const meta = li && li.querySelector(".msg__meta"); if (meta) meta.remove(); }
        break;
      case "message":
        renderFrame(frame);
        if (frame.direction === "out") {
          showTyping(false);
          toParent({ type: "omnirouter:message", message: { text: frame.text, sender: frame.sender, agent: frame.agent || null } });
        }
        break;
      case "typing":
        showTyping(true);
        break;
      case "identified":
        becomeUser(frame.visitor_token);
        break;
      case "error":
        if (frame.code === "bad_identity") {
          console.warn("omnirouter: user_hash does not match user_id");
          identityRefused = true; // the visitor chats anonymously
          flush();
          break;
        }
        if (frame.code === "store_unavailable" && !frame.id) { setTimeout(identify, 2000); break; } // identify again
        if (frame.retry) {
          showNotice(t("We could not save your message yet — retrying…"));
          setTimeout(() => pending.forEach(transmit), 2000);
        } else {
          if (frame.id) {
            pending = pending.filter((item) => item.id !== frame.id);
            savePending();
            const li = shown.get(frame.id);
            if (li) { li.remove(); shown.delete(frame.id); }
          }
          showNotice(frame.detail || t("That message could not be sent."));
        }
        break;
      case "decision":
        showNotice("");
        break;
      case "form_error":
        showFormError(frame);
        break;
      case "prechat_done":
        if (frame.name && !user.name) user = { ...user, name: frame.name };
        showMode("chat");
        input.focus();
        break;
      case "offline_sent":
        offlineSent.textContent = t("Thank you: we got your message and will answer by e-mail to {email} when we are open.").replace("{email}", frame.email);
        showMode("sent");
        break;
    }
  }

  // a file or image: sent over HTTP (the socket carries text), shown once the router kept it
  async function sendFile(file) {
    const id = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    render({ key: id, direction: "in", text: file.name, meta: t("sending…") });
    const body = new FormData();
    body.append("token", kept.local.getItem(tokenKey) || "");
    body.append("id", id);
    if (typeof user.name === "string" && user.name.trim()) body.append("name", user.name.trim().slice(0, 80));
    body.append("file", file, file.name);
    const url = new URL("/webchat/files", location.href);
    if (account) url.searchParams.set("account", account);
    if (inbox) url.searchParams.set("inbox", inbox);
    let answer = {};
    try {
      const response = await fetch(url, { method: "POST", body, credentials: "omit" });
      answer = await response.json().catch(() => ({}));
      if (response.ok) {
        render({ key: id, direction: "in", text: "", file: answer.file });
        showNotice("");
        return;
      }
    } catch (error) {
      // said below
    }
    const li = shown.get(id);
    if (li) { li.remove(); shown.delete(id); }
    const why = FILE_ERRORS[answer.error] || "The file could not be sent.";
    showNotice(t(why).replace("{mb}", String(answer.limit_mb || "")));
  }

  const picker = document.getElementById("file");
  document.getElementById("attach").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    for (const file of picker.files) sendFile(file);
    picker.value = "";
    input.focus();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(input.value);
    input.value = "";
    input.focus();
  });
  prechatForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = (id) => document.getElementById(id).value;
    sendForm(prechatForm, { type: "prechat", name: value("prechat-name"), email: value("prechat-email"), phone: value("prechat-phone"), consent: document.getElementById("prechat-consent").checked });
  });
  offlineForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = (id) => document.getElementById(id).value;
    const id = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    sendForm(offlineForm, { type: "offline", id, name: value("offline-name"), email: value("offline-email"), text: value("offline-text") });
  });
  for (const box of [prechatForm, offlineForm]) {
    box.addEventListener("input", (event) => { // a field being corrected no longer says it is wrong
      const field = event.target;
      if (!field.hasAttribute("aria-invalid")) return;
      field.removeAttribute("aria-invalid");
      const error = document.getElementById(`${field.id}-error`);
      if (error) { error.hidden = true; error.textContent = ""; }
    });
  }
  input.addEventListener("input", tellTyping);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  // the composer comes disabled until now: a message typed or sent before this script ran was
  // lost (a click on Send submitted the form natively, the text in the URL)
  if (!embedded) settle();
  if (embedded) {
    document.body.classList.add("embedded");
    const closer = document.getElementById("close");
    closer.hidden = false;
    closer.addEventListener("click", () => toParent({ type: "omnirouter:close" }));
    document.addEventListener("keydown", (event) => { if (event.key === "Escape") toParent({ type: "omnirouter:close" }); });
    window.addEventListener("message", onParent);
    toParent({ type: "omnirouter:loaded" });
    setTimeout(settle, 3000); // a page that never answers
  }
  loadWords().then(loadLook).finally(() => {
    if (look.prechat || look.offline) form.hidden = true; // until the welcome says which the visitor sees
    for (const item of pending) render({ key: item.id, direction: "in", text: item.text, meta: t("sending…") });
    connect();
  });
})();
