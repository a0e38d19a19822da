// Agent console: live queue over WebSocket, take over, reply, notes, transfer, hand back, close.
(function () {
  "use strict";
  const { el, api, loadSession, toast, fmtTime, fmtDuration, header, state } = window.Huike;
  const $ = (id) => document.getElementById(id);
  const SENDER = { customer: "客户", bot: "智能客服", agent: "客服", system: "系统", note: "内部备注" };
  const STATE = { queued: "排队中", agent: "人工服务中", bot: "机器人服务中", closed: "已结束" };
  const CHANNEL = { webchat: "网页", wechat_oa: "公众号", wecom: "企业微信", wechat_kf: "微信客服" };
  let current = null;       // ConversationDetail of the open conversation
  let queue = { waiting: [], mine: [], others: [] };
  let agents = [];
  let canned = [];
  let refreshTimer = null;
  const shown = new Set();  // message ids rendered in the open conversation
  let socket = null;        // the live console WebSocket
  let typingSent = 0;       // when we last told the customer we are typing

  async function init() {
    const user = await loadSession();
    $("top").appendChild(header("/console"));
    $("presence").value = user.presence === "offline" ? "online" : user.presence;
    await api("PUT", "/console/presence", { presence: $("presence").value }).catch(() => null);
    $("presence").addEventListener("change", async () => {
      await api("PUT", "/console/presence", { presence: $("presence").value });
      toast("状态已更新", "ok");
    });
    canned = await api("GET", "/console/canned").catch(() => []);
    await Promise.all([refreshQueue(), refreshAgents(), refreshEscalations()]);
    connect();
    setInterval(tickWaiting, 1000);
    if (user.role !== "agent") { watchSpikes(); setInterval(watchSpikes, 60000); }
    bindChat();
    const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("c") || 0);
    if (wanted) openConversation(wanted);
  }

  // --- queue -----------------------------------------------------------------------------
  async function refreshQueue() {
    queue = await api("GET", "/console/queue");
    renderList($("queue-waiting"), queue.waiting, true);
    renderList($("queue-mine"), queue.mine, false);
    renderList($("queue-others"), queue.others, false);
    $("waiting-count").textContent = String(queue.waiting.length);
    $("mine-count").textContent = String(queue.mine.length);
  }

  // Escalated tickets: those that landed on nobody (every supervisor and admin sees them) and mine.
  async function refreshEscalations() {
    if (!["supervisor", "admin"].includes(state.user.role)) return;
    const e = await api("GET", "/console/escalations").catch(() => null);
    if (!e) return;
    const badge = $("escalated");
    badge.hidden = e.shared + e.mine === 0;
    $("escalated-count").textContent = String(e.shared + e.mine);
    badge.title = `升级待办：待认领 ${e.shared}，升级给我 ${e.mine}`;
    $("escalated-list").replaceChildren(...e.tickets.map((t) =>
      el("li", {}, el("strong", {}, t.number), ` ${t.severity} · ${t.mine ? "升级给我" : "待认领"}`)));
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { refreshQueue().catch(() => null); refreshAgents().catch(() => null); }, 150);
  }

  function renderList(list, items, waiting) {
    list.replaceChildren(...items.map((item) => {
      const li = el("li", {
        dataset: { conversationId: item.conversation_id, queuedAt: item.queued_at || "" },
        class: current && current.conversation.conversation_id === item.conversation_id ? "current" : null,
        onclick: () => openConversation(item.conversation_id),
      },
      waiting ? el("button", { class: "take", type: "button", onclick: (ev) => { ev.stopPropagation(); take(item.conversation_id); } }, "接入") : null,
      el("div", { class: "name" }, item.customer_name),
      el("div", { class: "meta" },
        el("span", { class: "badge" }, CHANNEL[item.channel] || item.channel),
        waiting ? el("span", { class: "badge warn" }, item.reason_label || "待接入") : null,
        waiting ? el("span", { class: "waiting" }, "等待 " + fmtDuration(item.waiting_seconds)) : null),
      el("div", { class: "last" }, item.last_text || ""));
      return li;
    }));
    if (!items.length) list.replaceChildren(el("li", { class: "muted empty-item" }, "暂无"));
  }

  function tickWaiting() {
    document.querySelectorAll("#queue-waiting li[data-queued-at]").forEach((li) => {
      const since = li.dataset.queuedAt;
      if (!since) return;
      const span = li.querySelector(".waiting");
      if (span) span.textContent = "等待 " + fmtDuration((Date.now() - new Date(since).getTime()) / 1000);
    });
  }

  async function refreshAgents() {
    agents = await api("GET", "/console/agents");
    const select = $("transfer-to");
    const label = { online: "在线", busy: "忙碌", away: "离开", offline: "离线" };
    select.replaceChildren(el("option", { value: "" }, "转接给…"),
      ...agents.filter((a) => a.id !== state.user.id).map((a) =>
        el("option", { value: a.id, disabled: a.presence !== "online" || null },
          `${a.display_name}（${label[a.presence] || a.presence}，${a.active_count}/${a.max_concurrent}）`)));
  }

  // --- live events -----------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(proto + location.host + "/api/v1/console/ws");
    socket = ws;
    let beat = null;  // presence: the server counts us present while this page beats
    ws.onopen = () => { $("ws-status").textContent = "实时"; $("ws-status").className = "badge ok"; refreshQueue().catch(() => null); };
    ws.onclose = () => {
      clearInterval(beat);
      $("ws-status").textContent = "重连中…"; $("ws-status").className = "badge bad";
      setTimeout(connect, 2000);
    };
    ws.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      if (frame.type === "hello") {
        clearInterval(beat);
        beat = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" })); },
          1000 * (frame.heartbeat_seconds || 20));
        // Back after the console was away long enough to be marked offline: say again what the agent chose.
        if (frame.presence === "offline" && $("presence").value !== "offline") {
          api("PUT", "/console/presence", { presence: $("presence").value }).catch(() => null);
        }
        return;
      }
      if (frame.type !== "event") return;
      if (frame.topic === "ticket.escalated") refreshEscalations().catch(() => null);
      const data = frame.data || {};
      scheduleRefresh();
      if (!current || data.conversation_id !== current.conversation.conversation_id) return;
      if (frame.topic === "message") { appendMessage(data); if (data.direction === "in") loadSuggestions(); }
      else if (frame.topic === "conversation.updated") reloadCurrent();
    };
  }

  // --- one conversation ------------------------------------------------------------------
  async function openConversation(id) {
    try {
      current = await api("GET", "/console/conversations/" + id);
    } catch (e) { toast(e.message, "error"); return; }
    history.replaceState(null, "", "#c=" + id);
    shown.clear();
    $("messages").replaceChildren();
    current.messages.forEach(appendMessage);
    renderHead();
    renderCustomer();
    loadSuggestions();
    $("chat-empty").hidden = true; $("chat").hidden = false;
    $("messages").scrollTop = $("messages").scrollHeight;  // the newest message, now that the pane has a size
    document.querySelectorAll(".conv-list li").forEach((li) =>
      li.classList.toggle("current", Number(li.dataset.conversationId) === id));
  }

  async function reloadCurrent() {
    if (!current) return;
    const id = current.conversation.conversation_id;
    current = await api("GET", "/console/conversations/" + id);
    current.messages.forEach(appendMessage);
    renderHead();
    renderCustomer();
  }

  async function tagAction(method, path, body) {
    try { await api(method, path, body); await reloadCurrent(); }
    catch (e) { toast(e.message, "error"); }
  }

  function renderHead() {
    const c = current.conversation;
    const mine = c.state === "agent" && c.agent_id === state.user.id;
    const boss = state.user.role !== "agent";
    $("chat-title").textContent = c.customer_name + " · " + (CHANNEL[c.channel] || c.channel);
    $("chat-state").textContent = STATE[c.state] || c.state;
    $("chat-state").className = "badge " + (c.state === "queued" ? "warn" : c.state === "agent" ? "ok" : "");
    $("take").hidden = !(c.state === "queued" || c.state === "bot");
    $("transfer").hidden = $("transfer-to").hidden = !(c.state === "agent" && (mine || boss));
    $("hand-back").hidden = !((c.state === "agent" && (mine || boss)) || c.state === "queued");
    $("close").hidden = c.state === "closed" || (c.state === "agent" && !mine && !boss);
    $("reply-input").disabled = $("send-reply").disabled = false;
    const note = $("as-note");
    const canReply = mine || (c.state === "agent" && boss);
    if (!canReply) { note.checked = true; note.disabled = true; }      // only notes until you own it
    else if (note.disabled) { note.disabled = false; note.checked = false; }
  }

  function appendMessage(m) {
    if (shown.has(m.id)) return;
    shown.add(m.id);
    const who = m.sender === "agent" && m.agent_id ? agentName(m.agent_id) : (SENDER[m.sender] || m.sender);
    const li = el("li", { class: m.sender, dataset: { id: m.id, sender: m.sender } },
      el("div", { class: "who" }, who + " · " + fmtTime(m.created_at)),
      m.text || !m.image ? el("div", { class: "text" }, m.text) : null,
      m.image ? el("a", { href: "/api/v1/console/images/" + encodeURIComponent(m.image), target: "_blank", rel: "noopener" },
        el("img", { class: "photo", alt: "客户发送的图片", src: "/api/v1/console/images/" + encodeURIComponent(m.image) })) : null);
    const list = $("messages");
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  function agentName(id) {
    const a = agents.find((x) => x.id === id);
    return a ? "客服 " + a.display_name : "客服";
  }

  function renderCustomer() {
    const c = current.customer;
    const rows = [["姓名", c.name], ["手机", c.phone || "—"], ["生命周期", c.lifecycle_stage], ["会员等级", c.member_level || "—"],
      ["积分", String(c.points)], ["首次接触", fmtTime(c.created_at)], ["最近活跃", fmtTime(c.last_active_at) || "—"]];
    $("customer-info").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    $("customer-tags").replaceChildren(...c.tags.map((t) => el("span", { class: "badge tag", dataset: { tag: t.name } }, t.name,
      el("button", { type: "button", class: "link untag", title: "移除标签", "aria-label": "移除标签 " + t.name,
        onclick: () => tagAction("DELETE", `/customers/${c.id}/tags/${encodeURIComponent(t.name)}`) }, "×"))));
    const tagInput = el("input", { id: "tag-input", placeholder: "添加标签", maxlength: 32, size: 8 });
    $("customer-tags").appendChild(el("form", { class: "row tag-form", onsubmit: (ev) => {
      ev.preventDefault();
      const name = tagInput.value.trim();
      if (name) tagAction("POST", `/customers/${c.id}/tags`, { name });
    } }, tagInput, el("button", { type: "submit", class: "secondary" }, "添加")));
    if (c.masked) $("customer-tags").appendChild(el("span", { class: "muted small" }, "（个人信息已脱敏）"));
    const L = window.HuikeLabels;
    $("timeline").replaceChildren(...current.timeline.map((t) => t.kind === "ticket"
      ? el("li", { dataset: { ticketId: t.id } }, el("span", { class: "badge" }, "工单"), " ",
        el("a", { href: "/admin/tickets/" + t.id, class: "ticket-link" }, t.title), " · ",
        L.TICKET_STATUS[t.status] || t.status, el("div", { class: "muted small" }, fmtTime(t.created_at)))
      : el("li", {}, el("span", { class: "badge" }, "会话"), " ", t.title.replace(/^(\w+) 会话$/, (m, ch) => (CHANNEL[ch] || ch) + " 会话"), " · ",
        STATE[t.status] || t.status, el("div", { class: "muted small" }, fmtTime(t.created_at)))));
    $("customer-info").querySelector("dd").replaceChildren(el("a", { href: "/admin/customers/" + c.id, id: "customer-link" }, c.name));
    $("customer-panel").hidden = $("timeline-panel").hidden = false;
    loadInsight(c.id);
  }

  // 投诉异常预警 for supervisors: each new alert (or one that grew) once, naming the tickets behind it
  const spikesSeen = new Map();
  async function watchSpikes() {
    const alerts = await api("GET", "/insight/alerts").catch(() => []);
    for (const a of alerts) {
      if ((spikesSeen.get(a.id) || 0) >= a.count) continue;
      spikesSeen.set(a.id, a.count);
      toast(`投诉异常：${a.category}（${CHANNEL[a.channel] || a.channel}）本小时 ${a.count} 单，平时约 ${a.expected} 单；工单 ${a.ticket_ids.slice(0, 10).join("、")}`, "error");
    }
  }

  // 推荐商品 + churn risk / persona from the nightly insight run (absent before the first run)
  async function loadInsight(customerId) {
    const d = await api("GET", `/customers/${customerId}/insight`).catch(() => null);
    if (!current || current.customer.id !== customerId) return;
    const parts = [];
    if (d && d.persona) parts.push("画像：" + d.persona);
    if (d && d.churn_risk) parts.push("流失风险：" + d.churn_risk);
    if (d && d.expected_spend_90d != null) parts.push("预计90天消费：¥" + d.expected_spend_90d.toFixed(0));
    $("insight-summary").textContent = parts.join(" · ");
    const items = (d && d.recommendations) || [];
    $("recommendations").replaceChildren(...(items.length ? items.map((name) => el("li", {}, name))
      : [el("li", { class: "muted" }, "暂无推荐")]));
    $("insight-panel").hidden = false;
  }

  async function loadSuggestions() {
    if (!current) return;
    const id = current.conversation.conversation_id;
    const s = await api("GET", `/console/conversations/${id}/suggestions`).catch(() => null);
    if (!s || !current || current.conversation.conversation_id !== id) return;
    $("suggest-panel").hidden = false;
    $("suggest-for").textContent = s.text ? "针对：" + s.text : "暂无客户提问";
    $("suggestions").replaceChildren(...s.suggestions.map((h) => el("li", {},
      el("div", { class: "q" }, h.question, " ", el("span", { class: "badge" }, (h.score * 100).toFixed(0) + "%")),
      el("div", { class: "a" }, h.answer),
      el("div", { class: "row" },
        el("button", { type: "button", class: "secondary", onclick: () => { $("reply-input").value = h.answer; $("reply-input").focus(); } }, "使用"),
        el("button", { type: "button", class: "link", onclick: () => confirmFaq(s.message_id, h.faq_id) }, "确认匹配")))));
    if (!s.suggestions.length) $("suggestions").replaceChildren(el("li", { class: "muted" }, "没有合适的知识库答案"));
  }

  async function confirmFaq(messageId, faqId) {
    try {
      await api("POST", `/console/conversations/${current.conversation.conversation_id}/confirm-faq`, { message_id: messageId, faq_id: faqId });
      toast("已记录：该问题对应此答案", "ok");
    } catch (e) { toast(e.message, "error"); }
  }

  async function take(id) {
    try {
      await api("POST", `/console/conversations/${id}/take`);
      toast("已接入会话", "ok");
      await refreshQueue();
      await openConversation(id);
    } catch (e) {
      toast(e.status === 409 ? "接入失败：" + e.message : e.message, "error");
      await refreshQueue();
    }
  }

  async function action(path, body, done) {
    const id = current.conversation.conversation_id;
    try {
      await api("POST", `/console/conversations/${id}/${path}`, body);
      toast(done, "ok");
      await reloadCurrent();
      scheduleRefresh();
    } catch (e) { toast(e.message, "error"); }
  }

  function bindChat() {
    $("take").addEventListener("click", () => take(current.conversation.conversation_id));
    $("hand-back").addEventListener("click", () => action("hand-back", undefined, "已转回机器人"));
    $("close").addEventListener("click", () => { if (confirm("确定结束该会话？")) action("close", undefined, "会话已结束"); });
    $("transfer").addEventListener("click", () => {
      const to = Number($("transfer-to").value);
      if (!to) { toast("请选择转接对象", "error"); return; }
      action("transfer", { agent_id: to }, "已转接");
    });
    const input = $("reply-input");
    $("composer").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        const hint = $("canned-hint");
        if (!hint.hidden && hint.firstChild) { ev.preventDefault(); pickCanned(hint.querySelector(".sel") || hint.firstChild); return; }
        ev.preventDefault(); send();
      }
      if (ev.key === "Escape") $("canned-hint").hidden = true;
    });
    input.addEventListener("input", showCanned);
    input.addEventListener("input", typing);
  }

  // Tell the customer we are writing (at most every 3 s; not for internal notes or canned-response lookups).
  function typing() {
    const c = current && current.conversation;
    if (!c || c.state !== "agent" || c.agent_id !== state.user.id || $("as-note").checked) return;
    if (!socket || socket.readyState !== WebSocket.OPEN || $("reply-input").value.startsWith("/")) return;
    if (Date.now() - typingSent < 3000) return;
    typingSent = Date.now();
    socket.send(JSON.stringify({ type: "typing", conversation_id: c.conversation_id }));
  }

  function showCanned() {
    const value = $("reply-input").value;
    const hint = $("canned-hint");
    const m = /^\/([\w\-]*)$/.exec(value);
    if (!m) { hint.hidden = true; return; }
    const found = canned.filter((c) => c.shortcut.startsWith(m[1]) || c.title.includes(m[1]));
    hint.replaceChildren(...found.slice(0, 8).map((c, i) =>
      el("div", { class: i === 0 ? "sel" : null, dataset: { text: c.text }, onclick: (ev) => pickCanned(ev.currentTarget) },
        "/" + c.shortcut + "  ", el("span", { class: "muted" }, c.title))));
    hint.hidden = !found.length;
  }

  function pickCanned(node) {
    $("reply-input").value = node.dataset.text;
    $("canned-hint").hidden = true;
    $("reply-input").focus();
  }

  async function send() {
    const input = $("reply-input");
    const text = input.value.trim();
    if (!text || !current) return;
    const id = current.conversation.conversation_id;
    const path = $("as-note").checked ? "notes" : "messages";
    $("send-reply").disabled = true;
    try {
      const r = await api("POST", `/console/conversations/${id}/${path}`, { text });
      appendMessage(r.message);
      input.value = "";
    } catch (e) {
      toast(e.message, "error");
    } finally {
      $("send-reply").disabled = false;
      input.focus();
    }
  }

  init().catch((e) => { if (e.status !== 401) toast(e.message || "加载失败", "error"); });
})();
