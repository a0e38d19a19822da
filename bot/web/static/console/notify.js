// Console extras: new-chat notifications (title badge, optional sound and desktop notification) and
// keyboard navigation of the queue and the canned-reply list. Reads the DOM console.js renders.
(function () {
  "use strict";
  const { el } = window.Huike;
  const $ = (id) => document.getElementById(id);
  const KEY = "huike.console.notify";
  const base = document.title;
  const prefs = Object.assign({ sound: false, desktop: false }, JSON.parse(localStorage.getItem(KEY) || "{}"));
  let waiting = 0;
  let audio = null;

  function save() { localStorage.setItem(KEY, JSON.stringify(prefs)); }

  function controls() {
    const sound = el("input", { type: "checkbox", id: "notify-sound", checked: prefs.sound || null,
      onchange: () => { prefs.sound = sound.checked; save(); if (sound.checked) beep(); } });
    const desktop = el("input", { type: "checkbox", id: "notify-desktop", checked: prefs.desktop || null,
      onchange: async () => {
        if (desktop.checked && "Notification" in window && Notification.permission !== "granted") {
          desktop.checked = (await Notification.requestPermission()) === "granted";
        }
        prefs.desktop = desktop.checked; save();
      } });
    $("presence").closest(".presence").after(el("div", { class: "row notify-prefs" },
      el("label", {}, sound, "提示音"), el("label", {}, desktop, "桌面通知")));
    document.querySelector(".queue-col").appendChild(el("p", { class: "muted kbd-help", id: "kbd-help" },
      "快捷键：J / K 或 Alt+↓ / Alt+↑ 切换会话，Enter 打开，R 回复；回复框输入 / 后用 ↑ ↓ 选择快捷回复。"));
  }

  function beep() {
    try {
      audio = audio || new AudioContext();
      const osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain).connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.18);
    } catch (e) { /* no audio device: the badge still shows */ }
  }

  function onWaiting() {
    const n = Number($("waiting-count").textContent || 0);
    document.title = n ? `(${n}) ${base}` : base;
    if (n > waiting) {
      if (prefs.sound) beep();
      if (prefs.desktop && document.hidden && "Notification" in window && Notification.permission === "granted") {
        new Notification("有新的客户等待接入", { body: `当前 ${n} 位客户在等待`, tag: "huike-queue" });
      }
    }
    waiting = n;
  }

  // --- keyboard --------------------------------------------------------------------------
  const typing = (t) => t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");

  function moveInQueue(step) {
    const items = [...document.querySelectorAll(".conv-list li[data-conversation-id]")];
    if (!items.length) return;
    const at = items.indexOf(document.activeElement);
    const from = at >= 0 ? at : items.findIndex((li) => li.classList.contains("current"));
    const next = items[Math.min(items.length - 1, Math.max(0, from < 0 ? 0 : from + step))];
    next.tabIndex = 0;
    next.focus();
  }

  function moveInCanned(hint, step) {
    const options = [...hint.children];
    const at = options.findIndex((o) => o.classList.contains("sel"));
    const next = (at + step + options.length) % options.length;
    options.forEach((o, i) => o.classList.toggle("sel", i === next));
    options[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", (ev) => {
    const hint = $("canned-hint");
    if (ev.target === $("reply-input") && hint && !hint.hidden && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      moveInCanned(hint, ev.key === "ArrowDown" ? 1 : -1);
      return;
    }
    if (ev.altKey && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) { ev.preventDefault(); moveInQueue(ev.key === "ArrowDown" ? 1 : -1); return; }
    if (typing(ev.target) || ev.ctrlKey || ev.metaKey || ev.altKey || document.querySelector("dialog[open]")) return;
    const li = document.activeElement && document.activeElement.closest && document.activeElement.closest(".conv-list li[data-conversation-id]");
    if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); moveInQueue(1); }
    else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); moveInQueue(-1); }
    else if (ev.key === "Enter" && li) { ev.preventDefault(); li.click(); }
    else if (ev.key === "r" && !$("chat").hidden) { ev.preventDefault(); $("reply-input").focus(); }
  }, true);

  controls();
  new MutationObserver(onWaiting).observe($("waiting-count"), { childList: true, characterData: true, subtree: true });
})();
