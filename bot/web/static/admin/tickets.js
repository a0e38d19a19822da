// 工单: the list with saved views, filters and SLA countdowns; one ticket with its history and actions.
(function () {
  "use strict";
  const { el, api, toast, fmtTime, state, dialog } = window.Huike;
  const L = window.HuikeLabels;
  const POLL_MS = 10000;  // live updates: the list and the open ticket reload on their own
  const VIEWS = [
    ["open", "全部未完成", { open: "true" }],
    ["mine", "我的工单", { mine: "true", open: "true" }],
    ["unassigned", "待分配", { unassigned: "true" }],
    ["due_soon", "即将超时", { sla: "due_soon" }],
    ["breached", "已超时", { sla: "breached" }],
    ["escalated", "已升级/重开", { escalated: "true" }],
    ["all", "全部", {}],
  ];
  const PAGE = 50;

  function slaBadge(t) {
    const span = el("span", { class: "badge sla " + ({ breached: "bad", due_soon: "warn", ok: "ok" }[t.sla_state] || "off"),
      dataset: { due: t.sla_due || "", state: t.sla_state } });
    paintSla(span);
    return span;
  }

  function paintSla(span) {
    const due = span.dataset.due;
    const s = span.dataset.state;
    if (!due) { span.textContent = L.SLA[s] || "—"; return; }
    const left = Math.round((new Date(due).getTime() - Date.now()) / 1000);
    span.textContent = left >= 0 ? "剩余 " + countdown(left) : "已超时 " + countdown(-left);
    if (left < 0) span.className = "badge sla bad";
  }

  function countdown(s) {
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d} 天 ${h} 小时`;
    if (h) return `${h} 小时 ${m} 分`;
    return `${m} 分 ${s % 60} 秒`;
  }

  function tickSla() { document.querySelectorAll(".badge.sla[data-due]").forEach(paintSla); }

  async function loadAgents() { return api("GET", "/console/agents").catch(() => []); }

  // --- list ------------------------------------------------------------------------------
  async function listPage(me, page) {
    const [tax, agents] = await Promise.all([api("GET", "/tickets/taxonomy"), loadAgents()]);
    const params = new URLSearchParams(location.search);
    let view = params.get("view") || (me.role === "agent" ? "mine" : "open");
    let offset = 0;
    const opt = (pairs, all) => [el("option", { value: "" }, all), ...pairs.map(([v, l]) => el("option", { value: v }, l))];
    const status = el("select", { id: "f-status", "aria-label": "状态" }, opt(tax.statuses.map((s) => [s, L.TICKET_STATUS[s] || s]), "全部状态"));
    const category = el("select", { id: "f-category", "aria-label": "类别" }, opt([...tax.categories, tax.unclassified].map((c) => [c, c]), "全部类别"));
    const severity = el("select", { id: "f-severity", "aria-label": "级别" }, opt(tax.severities.map((s) => [s, L.SEVERITY[s] || s]), "全部级别"));
    const channel = el("select", { id: "f-channel", "aria-label": "渠道" }, opt(Object.entries(L.CHANNEL), "全部渠道"));
    const assignee = el("select", { id: "f-assignee", "aria-label": "处理人" }, opt(agents.map((a) => [String(a.id), a.display_name || a.username]), "全部处理人"));
    const sla = el("select", { id: "f-sla", "aria-label": "SLA" }, opt([["due_soon", "即将超时"], ["breached", "已超时"]], "全部 SLA 状态"));
    const q = el("input", { id: "f-q", type: "search", placeholder: "工单号 / 订单号 / 标题", maxlength: 32 });
    const tabs = el("div", { class: "tabs", role: "tablist" });
    const table = el("table", { class: "grid", id: "tickets-table" });
    const pager = el("div", { class: "row pager" });
    const stamp = el("span", { class: "muted small", id: "tickets-updated" });
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "工单"), stamp),
      tabs,
      el("form", { class: "row filters", onsubmit: (ev) => { ev.preventDefault(); offset = 0; load(); } },
        status, category, severity, channel, assignee, sla, q, el("button", { type: "submit" }, "筛选")),
      el("div", { class: "table-wrap" }, table), pager));
    for (const s of [status, category, severity, channel, assignee, sla]) s.addEventListener("change", () => { offset = 0; load(); });

    function renderTabs() {
      tabs.replaceChildren(...VIEWS.map(([key, label]) => el("button", {
        type: "button", role: "tab", class: "tab" + (key === view ? " active" : ""), "aria-selected": key === view ? "true" : "false",
        dataset: { view: key }, onclick: () => { view = key; offset = 0; history.replaceState(null, "", "?view=" + key); renderTabs(); load(); },
      }, label)));
    }

    async function load() {
      const base = VIEWS.find((v) => v[0] === view)[2];
      const query = new URLSearchParams({ ...base, limit: String(PAGE), offset: String(offset) });
      const filters = { status: status.value, category: category.value, severity: severity.value, channel: channel.value, assignee_id: assignee.value, sla: sla.value, q: q.value.trim() };
      for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
      const rows = await api("GET", "/tickets?" + query);
      table.replaceChildren(
        el("thead", {}, el("tr", {}, ["工单号", "客户", "类别", "级别", "状态", "渠道", "处理人", "SLA", "创建时间"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((t) => el("tr", { class: "clickable", dataset: { ticketId: t.id }, onclick: () => { location.href = "/admin/tickets/" + t.id; } },
          el("td", {}, el("a", { href: "/admin/tickets/" + t.id, class: "ticket-link" }, t.number || "#" + t.id),
            t.reopen_count ? el("span", { class: "badge bad" }, "重开") : null, t.escalation_level ? el("span", { class: "badge warn" }, "已升级") : null),
          el("td", {}, t.customer_name),
          el("td", {}, t.category),
          el("td", {}, el("span", { class: "badge " + (L.SEVERITY_CLASS[t.severity] || "") }, L.SEVERITY[t.severity] || t.severity)),
          el("td", {}, el("span", { class: "badge status" }, L.TICKET_STATUS[t.status] || t.status)),
          el("td", {}, L.CHANNEL[t.channel] || t.channel),
          el("td", {}, t.assignee_name || el("span", { class: "muted" }, "未分配")),
          el("td", {}, slaBadge(t)),
          el("td", {}, fmtTime(t.created_at))))));
      if (!rows.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 9, class: "muted" }, "没有符合条件的工单"))));
      pager.replaceChildren(
        el("button", { type: "button", class: "secondary", disabled: offset === 0 || null, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "上一页"),
        el("span", { class: "muted" }, `第 ${offset / PAGE + 1} 页`),
        el("button", { type: "button", class: "secondary", disabled: rows.length < PAGE || null, onclick: () => { offset += PAGE; load(); } }, "下一页"));
      stamp.textContent = "自动刷新 · " + fmtTime(new Date().toISOString());
    }

    renderTabs();
    await load();
    setInterval(() => { if (!document.hidden) load().catch(() => null); }, POLL_MS);
    setInterval(tickSla, 1000);
  }

  // --- one ticket ------------------------------------------------------------------------
  async function detailPage(me, id, page) {
    const [tax, agents] = await Promise.all([api("GET", "/tickets/taxonomy"), loadAgents()]);
    const lead = me.role !== "agent";
    let d = null;
    const conflict = el("div", { class: "conflict", id: "ticket-conflict", role: "alert", hidden: true });

    async function load() {
      d = await api("GET", "/tickets/" + id);
      render();
    }

    async function act(method, path, body, done) {
      try {
        await api(method, `/tickets/${id}/${path}`, body === undefined ? undefined : { ...body, version: d.ticket.version });
        conflict.hidden = true;
        toast(done, "ok");
        await load();
      } catch (e) {
        if (e.status === 409) {
          conflict.replaceChildren(el("strong", {}, "操作未生效："), e.message + " ",
            el("button", { type: "button", class: "secondary", onclick: () => { conflict.hidden = true; load(); } }, "刷新工单"));
          conflict.hidden = false;
          return;  // the dialog closes: the banner says what happened and offers the fresh ticket
        }
        throw e;
      }
    }

    const rootOptions = () => [["", "请选择归因"], ...tax.root_causes.map((r) => [r, r])];
    const codeOptions = () => [["", "请选择处理结果"], ...Object.entries(tax.resolution_codes)];
    const agentOptions = () => agents.filter((a) => a.role === "agent" || a.role === "supervisor").map((a) =>
      [String(a.id), `${a.display_name || a.username}（${L.PRESENCE[a.presence] || a.presence}，${a.active_count}/${a.max_concurrent}）`]);
    const need = (v, msg) => { if (!v) throw new Error(msg); return v; };

    function actions() {
      const t = d.ticket;
      const mine = t.assignee_id === me.id;
      const can = (to) => d.transitions.includes(to);
      const acting = lead || mine;
      const b = (label, idName, onclick, cls) => el("button", { type: "button", id: idName, class: cls || "secondary", onclick }, label);
      const list = [];
      if (can("assigned") && (t.status === "triaged" || t.status === "reopened")) {
        if (lead) list.push(b("分配", "act-assign", () => dialog("分配工单", [
          { name: "assignee", label: "处理人", type: "select", options: [["", "自动分配（按技能组）"], ...agentOptions()] },
        ], (v) => act("POST", "assign", { assignee_id: v.assignee ? Number(v.assignee) : null }, "已分配"))));
        else list.push(b("领取", "act-claim", () => act("POST", "assign", { assignee_id: me.id }, "已领取").catch((e) => toast(e.message, "error")), "primary"));
      }
      if (lead && t.status !== "closed" && t.status !== "resolved" && t.assignee_id) {
        list.push(b("改派", "act-reassign", () => dialog("改派工单", [
          { name: "assignee", label: "改派给", type: "select", options: agentOptions().filter(([v]) => Number(v) !== t.assignee_id) },
          { name: "note", label: "原因", max: 500 },
        ], (v) => act("POST", "reassign", { assignee_id: Number(need(v.assignee, "请选择处理人")), note: v.note }, "已改派"))));
      }
      if (acting && can("in_progress")) list.push(b(t.status === "waiting_customer" ? "继续处理" : "开始处理", "act-start",
        () => act("POST", "transition", { to: "in_progress" }, "已开始处理").catch((e) => toast(e.message, "error")), "primary"));
      if (acting && can("waiting_customer")) list.push(b("等待客户", "act-wait", () => dialog("等待客户回复", [
        { name: "note", label: "说明（可选）", max: 500 },
      ], (v) => act("POST", "transition", { to: "waiting_customer", note: v.note }, "已标记为等待客户"))));
      if (acting && can("resolved")) list.push(b("解决", "act-resolve", () => dialog("解决工单", [
        { name: "resolution_code", label: "处理结果", type: "select", options: codeOptions(), value: t.resolution_code || "" },
        { name: "root_cause", label: "归因", type: "select", options: rootOptions(), value: t.root_cause || "" },
        { name: "note", label: "处理说明（会告知客户）", type: "textarea", rows: 4, max: 2000 },
      ], (v) => act("POST", "resolve", { note: need(v.note.trim(), "请填写处理说明"), resolution_code: need(v.resolution_code, "请选择处理结果"),
        root_cause: need(v.root_cause, "请选择归因") }, "已解决，已通知客户"))));
      if (acting && can("closed")) list.push(b("关闭", "act-close", () => dialog("关闭工单", [
        { name: "resolution_code", label: "处理结果", type: "select", options: codeOptions(), value: t.resolution_code || "" },
        { name: "root_cause", label: "归因", type: "select", options: rootOptions(), value: t.root_cause || "" },
        { name: "note", label: "备注（可选）", max: 500 },
      ], (v) => act("POST", "close", { resolution_code: need(v.resolution_code, "请选择处理结果"), root_cause: need(v.root_cause, "请选择归因"),
        note: v.note }, "工单已关闭"))));
      if (can("reopened")) list.push(b("重新打开", "act-reopen", () => dialog("重新打开工单", [
        { name: "reason", label: "原因", type: "textarea", rows: 3, max: 500 },
      ], (v) => act("POST", "reopen", { reason: need(v.reason.trim(), "请填写原因") }, "已重新打开并升级"))));
      if (acting && t.status !== "closed") list.push(b("重新分诊", "act-triage", () => dialog("重新分诊", [
        { name: "category", label: "类别", type: "select", options: [...tax.categories, tax.unclassified].map((c) => [c, c]), value: t.category },
        { name: "severity", label: "级别", type: "select", options: tax.severities.map((s) => [s, L.SEVERITY[s] || s]), value: t.severity },
        { name: "note", label: "原因", max: 500 },
      ], (v) => act("PATCH", "triage", { category: v.category, severity: v.severity, note: v.note }, "已更新分诊"))));
      return list;
    }

    function render() {
      const t = d.ticket;
      const c = d.customer;
      const info = [
        ["状态", L.TICKET_STATUS[t.status] || t.status], ["类别", t.category], ["级别", (L.SEVERITY[t.severity] || t.severity) + (t.severity_reason ? "（" + t.severity_reason + "）" : "")],
        ["渠道", L.CHANNEL[t.channel] || t.channel], ["订单号", t.order_no || "—"], ["技能组", t.skill_group || "—"],
        ["处理人", t.assignee_name || "未分配"], ["联系方式", L.CONTACT[t.contact_preference] || t.contact_preference || "—"],
        ["首次响应时限", fmtTime(t.first_response_due) || "—"], ["解决时限", fmtTime(t.resolution_due) || "—"],
        ["处理结果", tax.resolution_codes[t.resolution_code] || t.resolution_code || "—"], ["归因", t.root_cause || "—"],
        ["处理说明", t.resolution_note || "—"], ["重开次数", String(t.reopen_count)], ["创建时间", fmtTime(t.created_at)],
      ];
      const noteInput = el("textarea", { id: "note-input", rows: 2, maxlength: 2000, placeholder: "内部备注，客户不可见" });
      page.replaceChildren(
        el("div", { class: "row crumbs" }, el("a", { href: "/admin/tickets" }, "← 工单列表")),
        conflict,
        el("section", { class: "panel ticket-head" },
          el("div", { class: "row" },
            el("h2", { class: "grow", id: "ticket-title" }, `工单 ${t.number || "#" + t.id}`, t.subject ? " · " + t.subject : ""),
            el("span", { class: "badge status", id: "ticket-status" }, L.TICKET_STATUS[t.status] || t.status),
            el("span", { class: "badge " + (L.SEVERITY_CLASS[t.severity] || "") }, L.SEVERITY[t.severity] || t.severity),
            t.escalation_level ? el("span", { class: "badge warn" }, "已升级") : null,
            slaBadge(t)),
          el("p", { class: "wrap description" }, t.description),
          el("div", { class: "row actions", id: "ticket-actions" }, actions())),
        el("div", { class: "detail-grid" },
          el("div", { class: "detail-main" },
            el("section", { class: "panel" }, el("h2", {}, "会话记录"),
              d.messages.length ? el("ol", { class: "messages ticket-messages", id: "ticket-messages" }, d.messages.map((m) =>
                el("li", { class: m.sender }, el("div", { class: "who" }, (L.SENDER[m.sender] || m.sender) + " · " + fmtTime(m.created_at)), el("div", { class: "text" }, m.text))))
                : el("p", { class: "muted" }, "该工单没有关联会话")),
            el("section", { class: "panel" }, el("h2", {}, "处理记录"),
              el("ol", { class: "events", id: "ticket-events" }, d.events.map((e) => el("li", { dataset: { kind: e.kind } },
                el("div", { class: "row" }, el("strong", {}, L.EVENT[e.kind] || "事件"),
                  e.from_status || e.to_status ? el("span", { class: "badge" }, `${L.TICKET_STATUS[e.from_status] || "—"} → ${L.TICKET_STATUS[e.to_status] || "—"}`) : null,
                  el("span", { class: "grow" }), el("span", { class: "muted small" }, `${L.actor(e.actor)} · ${fmtTime(e.created_at)}`)),
                e.note ? el("div", { class: "note-text" }, L.eventNote(e)) : null))),
              el("form", { class: "note-form", onsubmit: async (ev) => {
                ev.preventDefault();
                const text = noteInput.value.trim();
                if (!text) return;
                try { await api("POST", `/tickets/${id}/notes`, { text }); noteInput.value = ""; toast("备注已添加", "ok"); await load(); }
                catch (e) { toast(e.message, "error"); }
              } }, noteInput, el("div", { class: "row" }, el("span", { class: "grow" }), el("button", { type: "submit", id: "note-submit" }, "添加备注"))))),
          el("aside", { class: "detail-side" },
            el("section", { class: "panel", id: "ticket-customer" }, el("h2", {}, "客户"),
              c ? el("dl", { class: "info" },
                el("dt", {}, "姓名"), el("dd", {}, el("a", { href: "/admin/customers/" + c.id, id: "customer-link" }, c.name)),
                el("dt", {}, "手机"), el("dd", {}, c.phone || "—"),
                el("dt", {}, "生命周期"), el("dd", {}, L.STAGE[c.lifecycle_stage] || c.lifecycle_stage),
                el("dt", {}, "会员等级"), el("dd", {}, c.member_level || "—"),
                el("dt", {}, "积分"), el("dd", {}, String(c.points))) : el("p", { class: "muted" }, "客户不存在"),
              c && c.masked ? el("p", { class: "muted small" }, "个人信息已脱敏") : null),
            el("section", { class: "panel" }, el("h2", {}, "工单信息"),
              el("dl", { class: "info", id: "ticket-info" }, info.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))),
            el("section", { class: "panel", id: "ticket-survey" }, el("h2", {}, "满意度"),
              d.surveys.length ? el("ul", { class: "plain" }, d.surveys.map((s) => el("li", {},
                s.score === null ? "未评分" : `${s.score} 分`, s.resolved === false ? "（客户反馈未解决）" : "",
                s.comment ? " · " + s.comment : "", el("div", { class: "muted small" }, fmtTime(s.created_at)))))
                : el("p", { class: "muted" }, t.status === "resolved" ? "已发送满意度调查，等待客户评价" : "暂无评价")))));
      const list = document.getElementById("ticket-messages");
      if (list) list.scrollTop = list.scrollHeight;
    }

    await load();
    setInterval(() => {
      if (document.hidden || document.querySelector("dialog[open]")) return;
      api("GET", "/tickets/" + id).then((fresh) => { if (fresh.ticket.version !== d.ticket.version || fresh.events.length !== d.events.length) { d = fresh; render(); } }).catch(() => null);
    }, POLL_MS);
    setInterval(tickSla, 1000);
  }

  window.HuikePages = Object.assign(window.HuikePages || {}, {
    tickets: (me, id) => (id ? detailPage(me, id, document.getElementById("page")) : listPage(me, document.getElementById("page"))),
  });
})();
