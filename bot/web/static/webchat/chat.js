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
    bubble.appendChild(body);
    li.appendChild(bubble);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
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

  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(proto + location.host + "/api/v1/webchat/ws?after=" + lastId);
    ws.onopen = () => { status.textContent = "在线"; clearInterval(pollTimer); pollTimer = null; };
    ws.onmessage = (ev) => {
      const data = JSON.parse(ev.data);
      if (data.type === "message") render(data.message);
    };
    ws.onclose = () => { status.textContent = "重新连接中…"; ws = null; startPolling(); setTimeout(connect, 2000); };
  }

  async function send(text) {
    const body = { text: text, client_msg_id: clientId() };
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(body)); return; }
    const r = await fetch("/api/v1/webchat/messages", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!r.ok) { status.textContent = "发送失败，请稍后重试"; return; }
    await poll();
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send(text);
  });
  document.querySelectorAll(".quick button").forEach((b) => b.addEventListener("click", () => send(b.dataset.text)));

  poll().then(connect);
})();
