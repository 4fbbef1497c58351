// The agent console's few behaviours htmx does not cover. No inline script anywhere (the page's
// Content-Security-Policy forbids it); everything a customer wrote arrives as escaped text.
(() => {
  "use strict";
  const baseTitle = document.title;
  const pending = new Set();  // conversations the agent was told about and has not looked at yet
  let lastNotify = "";

  // Chromium lets a page make sound only after a user gesture: one audio context, made (or resumed)
  // on the agent's first click or key press, is what every later alert plays through
  let audio = null;
  function unlockAudio() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      audio = audio || new Ctx();
      if (audio.state === "suspended") audio.resume();
    } catch (_) { /* sound is a courtesy */ }
  }

  function beep() {
    if (!audio || audio.state !== "running") return false;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.35);
    return true;
  }

  // desktop notifications: the browser is asked once, at the first gesture, and never again
  const ASKED = "omnirouter.notificationsAsked";
  function askOnce() {
    if (!("Notification" in window) || Notification.permission !== "default" || localStorage.getItem(ASKED)) return;
    localStorage.setItem(ASKED, "1");
    Notification.requestPermission();
  }

  function firstGesture() {
    unlockAudio();
    const notify = document.getElementById("notify");
    if (!notify || notify.dataset.desktop === "1") askOnce();
  }
  document.addEventListener("pointerdown", firstGesture, { capture: true });
  document.addEventListener("keydown", firstGesture, { capture: true });

  function checkNotify() {
    const el = document.getElementById("notify");
    if (!el || !el.dataset.stamp || el.dataset.stamp === lastNotify) return;
    lastNotify = el.dataset.stamp;
    for (const thread of (el.dataset.threads || "").split(" ").filter(Boolean)) pending.add(thread);
    document.title = `(${pending.size}) ${el.dataset.title} — ${baseTitle}`;
    document.body.dataset.notified = String(pending.size);
    if (el.dataset.sound === "1" && beep()) {
      document.body.dataset.sounded = String(Number(document.body.dataset.sounded || 0) + 1);
    }
    if (el.dataset.desktop === "1" && "Notification" in window && Notification.permission === "granted") {
      new Notification(el.dataset.title, { tag: `omnirouter-${el.dataset.threads}`, body: baseTitle });
    }
  }

  function resetTitle() {
    if (document.visibilityState === "visible" && pending.size) {
      pending.clear();
      document.title = baseTitle;
    }
  }

  function scrollHistory() {
    const history = document.getElementById("history");
    if (history) history.scrollTop = history.scrollHeight;
  }

  // canned responses: "/" in an empty reply box lists them; a click puts the text in the box
  function cannedList() {
    const data = document.getElementById("canned-data");
    try { return data ? JSON.parse(data.textContent) : []; } catch (_) { return []; }
  }

  // typing: the customer is told (web chat, Telegram) at most every 3 s while the agent writes;
  // the customer's own "typing…" (a live update) fades 6 s after the last one
  let typingSent = 0;
  function tellTyping(box) {
    const now = Date.now();
    if (now - typingSent < 3000 || !box.value.trim()) return;
    typingSent = now;
    const form = box.form;
    const body = new FormData();
    body.set("csrf_token", form.elements.csrf_token.value);
    fetch(form.action.replace(/\/reply$/, "/typing"), { method: "POST", body, credentials: "same-origin" }).catch(() => {});
  }

  let typingShown = null;
  function fadeTyping() {
    const note = document.getElementById("typing");
    if (!note || note.hidden) return;
    clearTimeout(typingShown);
    typingShown = setTimeout(() => { note.hidden = true; }, 6000);
  }

  document.addEventListener("input", (event) => {
    if (event.target.id === "reply-text") tellTyping(event.target);
  });

  document.addEventListener("input", (event) => {
    if (event.target.id !== "reply-text") return;
    const box = document.getElementById("canned-suggestions");
    const match = /^\/(\S*)$/.exec(event.target.value);
    box.replaceChildren();
    if (!match) { box.hidden = true; return; }
    for (const item of cannedList().filter((c) => c.shortcut.startsWith(match[1]))) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `/${item.shortcut} — ${item.text}`;
      button.addEventListener("click", () => {
        event.target.value = item.text;
        box.hidden = true;
        event.target.focus();
      });
      li.appendChild(button);
      box.appendChild(li);
    }
    box.hidden = box.children.length === 0;
  });

  // keyboard: Enter sends the reply and Shift+Enter starts a new line, or (turned off in the "?"
  // help, kept in this browser) Ctrl/Cmd+Enter sends; single keys outside text fields move around
  const ENTER_SENDS = "omnirouter.enterSends";
  const enterSends = () => localStorage.getItem(ENTER_SENDS) !== "0";

  function sendsReply(event) {
    if (event.key !== "Enter" || event.isComposing) return false;
    return enterSends() ? !event.shiftKey && !event.altKey : event.ctrlKey || event.metaKey;
  }

  function rows() { return Array.from(document.querySelectorAll(".lists a.row__main")); }

  function step(by) {
    const links = rows();
    if (!links.length) return;
    const here = links.findIndex((a) => a.href === window.location.href);
    const next = here < 0 ? (by > 0 ? 0 : links.length - 1) : Math.min(Math.max(here + by, 0), links.length - 1);
    window.location.assign(links[next].href);  // not click(): a live update may have just replaced the row
  }

  function clickFirst(...ids) {
    const button = ids.map((id) => document.getElementById(id)).find((el) => el && !el.disabled);
    if (button) button.click();
  }

  const SHORTCUTS = {
    "?": () => { const help = document.getElementById("shortcuts"); if (help && !help.open) help.showModal(); },
    j: () => step(1),
    k: () => step(-1),
    t: () => clickFirst("take-thread", "take-next"),
    e: () => clickFirst("resolve"),
    r: () => { const reply = document.getElementById("reply-text"); if (reply) reply.focus(); },
  };

  document.addEventListener("keydown", (event) => {
    if (event.target.id === "reply-text") {
      if (sendsReply(event)) {
        event.preventDefault();
        if (event.target.value.trim()) event.target.form.requestSubmit();
      }
      return;
    }
    const field = event.target.closest("input, textarea, select, [contenteditable]");
    // a field of a dialog just closed (the "?" help) keeps no keys from the shortcuts
    if (event.ctrlKey || event.metaKey || event.altKey || (field && !field.closest("dialog:not([open])"))) return;
    const action = SHORTCUTS[event.key];
    if (action) { event.preventDefault(); action(); }
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("#show-shortcuts")) SHORTCUTS["?"]();
    if (event.target.closest("#show-alerts")) document.getElementById("alerts").showModal();
    if (event.target.closest("#alerts-close")) document.getElementById("alerts").close();
  });
  // a closed dialog hands the keyboard back to the page, not to the field it had focused
  document.addEventListener("close", (event) => {
    if (event.target.tagName === "DIALOG" && event.target.contains(document.activeElement)) document.activeElement.blur();
  }, true);

  document.addEventListener("change", (event) => {
    if (event.target.id === "enter-sends") localStorage.setItem(ENTER_SENDS, event.target.checked ? "1" : "0");
    if (event.target.id === "reply-file") checkFileSize(event.target);
  });

  // a file larger than the channel carries is refused here, before its upload (the router refuses it too)
  function checkFileSize(input) {
    const file = input.files && input.files[0];
    const flash = document.getElementById("flash");
    const tooLarge = file && file.size > Number(input.dataset.largest || Infinity);
    if (tooLarge) input.value = "";
    if (flash) {
      flash.hidden = !tooLarge;
      flash.textContent = tooLarge ? input.dataset.tooLarge : "";
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("enter-sends");
    if (box) box.checked = enterSends();
  });

  // the shift button: where the account records it, the location at this press, and only now
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.locate !== "1" || form.dataset.located || !navigator.geolocation) return;
    event.preventDefault();
    const submitter = event.submitter;
    const finish = () => { form.dataset.located = "1"; form.requestSubmit(submitter); };
    navigator.geolocation.getCurrentPosition((pos) => {
      form.elements.lat.value = pos.coords.latitude;
      form.elements.lon.value = pos.coords.longitude;
      form.elements.accuracy.value = pos.coords.accuracy;
      finish();
    }, finish, { timeout: 5000, maximumAge: 0 });
  });

  // a live update re-renders parts of the page (the thread's head with its status, SLA clock and
  // the agents' load) while the agent may be filling one of their forms: what they chose or typed,
  // and the field they were in, carry over to the fresh copy
  function fieldKey(el) {
    const form = el.closest("form");
    return form ? `${form.getAttribute("action")} ${el.name}` : "";
  }
  function fieldsOf(root) {
    const found = new Map();
    for (const el of root.querySelectorAll("input[name], select[name], textarea[name]")) {
      if (el.type !== "hidden" && el.type !== "file" && fieldKey(el)) found.set(fieldKey(el), el);
    }
    return found;
  }
  function edited(el) {
    if (el.tagName === "SELECT") return [...el.options].some((o) => o.selected !== o.defaultSelected);
    if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
    return el.value !== el.defaultValue;
  }
  let refocus = null;
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const old = event.detail.target;
    const fresh = event.detail.fragment;
    if (!old || !fresh || !old.querySelectorAll) return;
    const twins = fieldsOf(fresh);
    for (const [key, el] of fieldsOf(old)) {
      const twin = twins.get(key);
      if (!twin) continue;
      if (edited(el)) {
        if (el.tagName === "SELECT") {
          for (const option of twin.options) option.selected = [...el.selectedOptions].some((o) => o.value === option.value);
        } else if (el.type === "checkbox" || el.type === "radio") {
          twin.checked = el.checked;
        } else {
          twin.value = el.value;
        }
      }
      if (el === document.activeElement) refocus = { twin, start: el.selectionStart, end: el.selectionEnd };
    }
  });
  // at once, in the same step as the swap: a key pressed in between would otherwise land on the page
  // (and run a shortcut) instead of in the field
  document.addEventListener("htmx:oobAfterSwap", () => {
    if (!refocus || !refocus.twin.isConnected) return;
    const { twin, start, end } = refocus;
    refocus = null;
    twin.focus();
    try { if (typeof start === "number") twin.setSelectionRange(start, end); } catch (_) { /* not a text field */ }
  });

  document.addEventListener("htmx:wsAfterMessage", () => { checkNotify(); scrollHistory(); fadeTyping(); });
  // the router closes the live socket when the session ends (4401) or the role changes (4403):
  // reloading shows the login page, or the page the new role may see
  document.addEventListener("htmx:wsClose", (event) => {
    document.documentElement.dataset.live = "closed";
    const code = event.detail && event.detail.event ? event.detail.event.code : 0;
    if (code === 4401 || code === 4403) window.location.reload();
  });
  document.addEventListener("htmx:afterSwap", scrollHistory);
  document.addEventListener("htmx:afterRequest", (event) => {
    const flash = document.getElementById("flash");
    if (!flash) return;
    const failed = event.detail.failed && event.detail.xhr;
    flash.hidden = !failed;
    flash.textContent = failed ? event.detail.xhr.responseText : "";
  });
  // the router marks what the open conversation shows as read only while the agent can see it
  let liveSocket = null;
  const sayVisibility = () => {
    if (liveSocket) liveSocket.send(JSON.stringify({ visible: document.visibilityState === "visible" }));
  };
  document.addEventListener("htmx:wsOpen", (event) => {
    liveSocket = event.detail.socketWrapper;
    document.documentElement.dataset.live = "open";  // live updates flow from here on (tests wait for it)
    sayVisibility();
  });
  document.addEventListener("visibilitychange", sayVisibility);
  document.addEventListener("visibilitychange", resetTitle);
  window.addEventListener("focus", resetTitle);
  window.addEventListener("DOMContentLoaded", scrollHistory);
  document.documentElement.dataset.console = "ready";  // the shortcuts listen from here on (tests wait for it)
})();
