// Web-chat widget: WebSocket first, HTTP polling as the fallback; resumes after the last seen id.
(function () {
  "use strict";
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const status = document.getElementById("status");
  const seen = new Set();
  let lastId = Number(sessionStorage.getItem("huike_last_id") || 0);
  let ws = null;
  let pollTimer = null;

  const who = { bot: "智能客服", agent: "人工客服", system: "系统消息" };

  function render(m) {
    if (seen.has(m.id)) return;            // each message is shown exactly once
    seen.add(m.id);
    lastId = Math.max(lastId, m.id);
    sessionStorage.setItem("huike_last_id", String(lastId));
    const li = document.createElement("li");
    li.className = "msg " + (m.direction === "in" ? "in" : "out");
    li.dataset.id = m.id;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (m.direction !== "in") {
      const label = document.createElement("div");
      label.className = "who";
      label.textContent = who[m.sender] || "客服";
      bubble.appendChild(label);
    }
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = m.text;             // textContent: customer and FAQ text is never HTML
    if (m.text || !m.image) bubble.appendChild(body);
    if (m.image) {
      const img = document.createElement("img");
      img.className = "photo";
      img.alt = "图片";
      img.src = "/api/v1/webchat/images/" + encodeURIComponent(m.image);
      img.addEventListener("load", () => { list.scrollTop = list.scrollHeight; });
      bubble.appendChild(img);
    }
    if (m.created_at) {
      const time = document.createElement("time");
      time.className = "time";
      time.dateTime = m.created_at;
      time.textContent = clock(m.created_at);
      bubble.appendChild(time);
    }
    li.appendChild(bubble);
    if (m.sender === "agent") hideTyping();
    list.insertBefore(li, typingRow.parentNode ? typingRow : null);
    list.scrollTop = list.scrollHeight;
  }

  // "12:05" today, "11月23日 12:05" before today (the visitor's own clock and time zone).
  function clock(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    const hm = d.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", hour12: false });
    const today = new Date().toDateString() === d.toDateString();
    return today ? hm : `${d.getMonth() + 1}月${d.getDate()}日 ${hm}`;
  }

  // "客服正在输入…" while the agent writes (the console says so every few seconds; it fades after 5 s).
  const typingRow = document.createElement("li");
  typingRow.className = "typing";
  typingRow.id = "typing";
  typingRow.textContent = "客服正在输入…";
  let typingTimer = null;
  function showTyping() {
    if (!typingRow.parentNode) list.appendChild(typingRow);
    list.scrollTop = list.scrollHeight;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 5000);
  }
  function hideTyping() {
    clearTimeout(typingTimer);
    typingRow.remove();
  }

  function clientId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
  }

  async function poll() {
    try {
      const r = await fetch("/api/v1/webchat/messages?after=" + lastId, { credentials: "same-origin" });
      if (r.ok) (await r.json()).messages.forEach(render);
    } catch (e) { /* offline: try again later */ }
  }

  function startPolling() {
    if (!pollTimer) pollTimer = setInterval(poll, 3000);
  }

  // Sent but not yet acknowledged: resent with the same client_msg_id until the server has it
  // (it answers a repeat with the first answer), so a failed send never loses the customer's text.
  const unacked = new Map();
  const RETRY_MS = [1000, 2000, 5000, 10000, 30000];

  function retryLater(id) {
    const item = unacked.get(id);
    if (!item || item.timer) return;
    status.textContent = "发送失败，正在重试…";
    const delay = RETRY_MS[Math.min(item.tries, RETRY_MS.length - 1)];
    item.tries += 1;
    item.timer = setTimeout(() => { item.timer = null; deliver(id); }, delay);
  }

  function slowDown(id, message, seconds) {
    const item = unacked.get(id);
    if (!item || item.timer) return;
    status.textContent = message || "发送太频繁，请稍后再试";
    item.timer = setTimeout(() => { item.timer = null; deliver(id); }, Math.max(1, seconds || 5) * 1000);
  }

  function acknowledged(id) {
    unacked.delete(id);
    if (ws && ws.readyState === WebSocket.OPEN) status.textContent = "在线";
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(proto + location.host + "/api/v1/webchat/ws?after=" + lastId);
    ws.onopen = () => {
      status.textContent = "在线"; clearInterval(pollTimer); pollTimer = null;
      unacked.forEach((_item, id) => deliver(id));
    };
    ws.onmessage = (ev) => {
      const data = JSON.parse(ev.data);
      if (data.type === "message") render(data.message);
      else if (data.type === "typing") showTyping();
      else if (data.type === "ack") acknowledged(data.client_msg_id);
      else if (data.type === "error" && unacked.has(data.client_msg_id)) {
        if (data.code === "unavailable") retryLater(data.client_msg_id);
        else if (data.code === "rate_limited") slowDown(data.client_msg_id, data.message, data.retry_after);
        else { unacked.delete(data.client_msg_id); status.textContent = data.message; }
      }
    };
    ws.onclose = () => {
      status.textContent = "重新连接中…"; ws = null; startPolling(); setTimeout(connect, 2000);
      unacked.forEach((_item, id) => retryLater(id));
    };
  }

  async function deliver(id) {
    const item = unacked.get(id);
    if (!item) return;
    const body = { text: item.text, client_msg_id: id };
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(body)); return; }
    try {
      const r = await fetch("/api/v1/webchat/messages", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (r.ok) { acknowledged(id); await poll(); return; }
      if (r.status === 429) {  // too fast: say so, and send it once the server allows
        const data = await r.json().catch(() => ({}));
        slowDown(id, data.message, Number(r.headers.get("Retry-After")));
        return;
      }
      if (r.status < 500 && r.status !== 429) {  // refused for what it is: resending cannot help
        unacked.delete(id);
        status.textContent = ((await r.json().catch(() => ({}))).message) || "消息发送失败";
        return;
      }
    } catch (e) { /* network down: retried below */ }
    retryLater(id);
  }

  function send(text) {
    const id = clientId();
    unacked.set(id, { text: text, tries: 0, timer: null });
    deliver(id);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text);
  });
  // A photo: checked here for a quick answer, and again by the server (type by its bytes, size).
  const photo = document.getElementById("photo");
  const TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];
  document.getElementById("attach").addEventListener("click", () => photo.click());
  photo.addEventListener("change", async () => {
    const file = photo.files[0];
    photo.value = "";
    if (!file) return;
    if (!TYPES.includes(file.type)) { status.textContent = "只支持 JPG、PNG、WebP、GIF 图片"; return; }
    if (file.size > 5 * 1024 * 1024) { status.textContent = "图片不能超过 5 MB"; return; }
    status.textContent = "图片发送中…";
    try {
      const r = await fetch("/api/v1/webchat/images?client_msg_id=" + encodeURIComponent(clientId()), {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": file.type }, body: file,
      });
      if (!r.ok) { status.textContent = ((await r.json().catch(() => ({}))).message) || "图片发送失败"; return; }
      status.textContent = ws && ws.readyState === WebSocket.OPEN ? "在线" : "连接中…";
      await poll();
    } catch (e) { status.textContent = "图片发送失败，请重试"; }
  });

  // Welcome message and quick replies, as the brand set them in the admin pages.
  const quick = document.getElementById("quick");
  async function welcome() {
    try {
      const r = await fetch("/api/v1/webchat/config", { credentials: "same-origin" });
      if (!r.ok) return;
      const cfg = await r.json();
      document.getElementById("welcome").textContent = cfg.welcome;
      quick.replaceChildren(...cfg.quick_replies.map((q) => {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = q.title; b.dataset.text = q.text;
        return b;
      }));
    } catch (e) { /* the built-in buttons stay */ }
  }
  quick.addEventListener("click", (ev) => { const b = ev.target.closest("button"); if (b) send(b.dataset.text); });
  welcome();

  poll().then(connect);
})();
