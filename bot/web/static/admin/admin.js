// Admin pages: FAQ (edit, 试一试, import/export), dashboard, canned replies, users, channels, audit log.
// 工单, 客户, 分群 and 规则 live in their own modules (tickets.js, customers.js, rules.js) and register in HuikePages.
(function () {
  "use strict";
  const { el, api, loadSession, toast, fmtTime, fmtDuration, header, state, ROLE_NAMES, dialog } = window.Huike;
  const page = document.getElementById("page");
  const section = (location.pathname.split("/")[2] || "faq");
  const itemId = Number(location.pathname.split("/")[3] || 0);  // /admin/tickets/42
  const CARE_KINDS = { birthday: "生日", festival: "节日", inactivity: "久未互动", lifecycle: "生命周期变化",
    welcome: "新关注", ticket_survey: "工单回访", nps: "NPS 调查", level_up: "会员升级", winback: "流失挽回" };
  const sections = { faq: faqPage, canned: cannedPage, dashboard: dashboardPage, users: usersPage, channels: channelsPage, audit: auditPage,
    ...(window.HuikeAdminSections || {}) };  // pages in their own files (gaps.js) register here

  async function init() {
    const user = await loadSession();
    document.getElementById("top").appendChild(header("/admin/" + section));
    const render = sections[section] || (window.HuikePages || {})[section];
    if (!render) { page.replaceChildren(el("p", {}, "页面不存在")); return; }
    try { await render(user, itemId); }
    catch (e) {
      if (e.status === 403) page.replaceChildren(el("div", { class: "panel" }, el("h2", {}, "没有权限"), el("p", { class: "muted" }, "您的角色无法访问此页面。")));
      else toast(e.message, "error");
    }
  }

  // --- FAQ -------------------------------------------------------------------------------
  async function faqPage() {
    const search = el("input", { id: "faq-search", type: "search", placeholder: "搜索问题或答案", class: "grow" });
    const category = el("select", { id: "faq-category" }, el("option", { value: "" }, "全部分类"));
    const enabled = el("select", { id: "faq-enabled" }, el("option", { value: "" }, "全部状态"), el("option", { value: "true" }, "已启用"), el("option", { value: "false" }, "已停用"));
    const table = el("table", { class: "grid", id: "faq-table" });
    const datalist = el("datalist", { id: "faq-categories" });
    const importFormat = el("select", { id: "import-format" }, el("option", { value: "csv" }, "CSV"), el("option", { value: "xlsx" }, "XLSX"), el("option", { value: "rasa" }, "Rasa YAML"));
    const importFile = el("input", { type: "file", id: "import-file", accept: ".csv,.xlsx,.yml,.yaml" });

    const tryInput = el("input", { id: "try-input", class: "grow", placeholder: "输入客户可能会问的话，例如：我的快递到哪了", maxlength: 500 });
    const tryResult = el("div", { id: "try-result", class: "try-result" });
    const tryPanel = el("section", { class: "panel" }, el("h2", {}, "试一试"),
      el("form", { class: "row", onsubmit: async (ev) => { ev.preventDefault(); await runTry(tryInput.value, tryResult); } },
        tryInput, el("button", { type: "submit", id: "try-submit" }, "看看机器人怎么回答")), tryResult);

    const listPanel = el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "知识库（FAQ）"),
        el("button", { type: "button", id: "faq-new", onclick: () => editFaq(null) }, "新建问答")),
      el("div", { class: "row" }, search, category, enabled),
      el("div", { class: "row", style: null },
        el("span", { class: "muted" }, "导出："),
        el("a", { href: "/api/v1/admin/faqs/export?format=csv", download: "faq.csv" }, "CSV"),
        el("a", { href: "/api/v1/admin/faqs/export?format=xlsx", download: "faq.xlsx" }, "XLSX"),
        el("a", { href: "/api/v1/admin/faqs/export?format=rasa", download: "faq-nlu.yml" }, "Rasa YAML"),
        el("span", { class: "grow" }),
        el("span", { class: "muted" }, "导入："), importFormat, importFile,
        el("button", { type: "button", class: "secondary", id: "import-submit", onclick: doImport }, "导入")),
      table, datalist);
    page.replaceChildren(tryPanel, listPanel);

    async function loadCategories() {
      const cats = await api("GET", "/admin/faq-categories");
      const keep = category.value;
      category.replaceChildren(el("option", { value: "" }, "全部分类"), ...cats.map((c) => el("option", { value: c.category }, `${c.category || "未分类"}（${c.count}）`)));
      category.value = keep;
      datalist.replaceChildren(...cats.map((c) => el("option", { value: c.category })));
    }

    async function load() {
      const q = new URLSearchParams({ q: search.value.trim(), category: category.value, enabled: enabled.value });
      const rows = await api("GET", "/admin/faqs?" + q);
      table.replaceChildren(
        el("thead", {}, el("tr", {}, ["#", "标准问题", "相似问法", "答案", "分类", "状态", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((f) => el("tr", { dataset: { faqId: f.id } },
          el("td", {}, String(f.id)),
          el("td", { class: "question" }, f.question),
          el("td", { class: "muted" }, f.similar_questions.length ? f.similar_questions.slice(0, 3).join("；") + (f.similar_questions.length > 3 ? "…" : "") : "—"),
          el("td", { class: "wrap answer" }, f.answer.length > 120 ? f.answer.slice(0, 120) + "…" : f.answer),
          el("td", {}, f.category || "—"),
          el("td", {}, el("span", { class: "badge " + (f.enabled ? "ok" : "off") }, f.enabled ? "启用" : "停用")),
          el("td", {},
            el("button", { type: "button", class: "link edit", onclick: () => editFaq(f) }, "编辑"),
            el("button", { type: "button", class: "link toggle", onclick: () => toggle(f) }, f.enabled ? "停用" : "启用"))))));
      if (!rows.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 7, class: "muted" }, "没有匹配的问答"))));
    }

    async function toggle(f) {
      try { await api("PUT", "/admin/faqs/" + f.id, { enabled: !f.enabled }); toast(f.enabled ? "已停用" : "已启用", "ok"); await load(); }
      catch (e) { toast(e.message, "error"); }
    }

    function editFaq(f) {
      // the wording last checked for near duplicates: an unchanged wording (or saving again after
      // the warning) is not checked again
      let checked = f ? JSON.stringify([f.question, f.similar_questions]) : "";
      const d = dialog(f ? "编辑问答 #" + f.id : "新建问答", [
        { name: "question", label: "标准问题", value: f && f.question, required: true, max: 200 },
        { name: "similar", label: "相似问法（每行一个）", type: "textarea", rows: 4, value: f ? f.similar_questions.join("\n") : "" },
        { name: "answer", label: "答案", type: "textarea", rows: 6, value: f && f.answer, required: true, max: 4000 },
        { name: "category", label: "分类", value: f ? f.category : "", list: "faq-categories", max: 32 },
        { name: "enabled", label: "启用", type: "checkbox", value: f ? f.enabled : true },
      ], async (v) => {
        const body = { question: v.question.trim(), answer: v.answer.trim(), category: v.category.trim(), enabled: v.enabled,
          similar_questions: v.similar.split("\n").map((s) => s.trim()).filter(Boolean) };
        const wording = JSON.stringify([body.question, body.similar_questions]);
        if (body.enabled && checked !== wording) {
          const near = await api("POST", "/admin/faqs/check", { question: body.question, similar_questions: body.similar_questions, faq_id: f ? f.id : null });
          checked = wording;
          if (near.length) { showNear(d, near, body.answer); throw new Error("与已有问答相近，客户可能得到两条不同的答案。请核对后再次点击「保存」确认。"); }
        }
        toast("正在保存并更新机器人…", "info");
        if (f) await api("PUT", "/admin/faqs/" + f.id + "?wait=serving", body); else await api("POST", "/admin/faqs?wait=serving", body);
        toast("已保存，机器人已使用新内容", "ok");
        await Promise.all([load(), loadCategories()]);
      });
    }

    function showNear(d, near, answer) {
      const box = d.querySelector("#faq-near") || el("div", { id: "faq-near", class: "near" });
      box.replaceChildren(el("p", {}, "以下已有问答与本条相近："),
        ...near.map((n) => el("div", { class: "near-pair" },
          el("div", { class: "muted small" }, `「${n.asked_as}」接近 #${n.faq_id}「${n.question}」（${n.score.toFixed(2)}）`),
          el("div", { class: "row" }, el("div", { class: "grow answer" }, el("b", {}, "已有答案："), n.answer),
            el("div", { class: "grow answer" }, el("b", {}, "本条答案："), answer)))));
      d.querySelector("form").insertBefore(box, d.querySelector(".error"));
    }

    async function doImport() {
      const file = importFile.files[0];
      if (!file) { toast("请选择文件", "error"); return; }
      try {
        const r = await api("POST", "/admin/faqs/import?wait=serving&format=" + importFormat.value, file);
        toast(`导入完成：新增 ${r.created}，更新 ${r.updated}，未变 ${r.unchanged}` + (r.errors.length ? `，${r.errors.length} 行有误` : ""), "ok");
        await Promise.all([load(), loadCategories()]);
      } catch (e) { toast(e.message, "error"); }
    }

    let timer = null;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 250); });
    category.addEventListener("change", load);
    enabled.addEventListener("change", load);
    await Promise.all([load(), loadCategories()]);
  }

  async function runTry(text, box) {
    if (!text.trim()) return;
    const r = await api("POST", "/admin/faqs/try", { text: text.trim() });
    const decision = { answer: ["直接回答", "ok"], clarify: ["反问澄清", "warn"], fallback: ["无法回答（兜底）", "bad"] }[r.decision] || [r.decision, ""];
    box.replaceChildren(
      el("div", { class: "row" }, el("span", { class: "badge " + decision[1], id: "try-decision" }, decision[0]),
        el("span", { class: "muted" }, `意图：${window.HuikeLabels.INTENT[r.intent] || r.intent}（${(r.confidence * 100).toFixed(0)}%）`)),
      el("div", { class: "answer", id: "try-answer" }, r.answer),
      el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, el("th", {}, "候选问题"), el("th", {}, "得分"))),
        el("tbody", {}, r.hits.map((h) => el("tr", {}, el("td", {}, `#${h.faq_id} ${h.question}`), el("td", {}, h.score.toFixed(3)))))));
  }

  // --- dashboard -------------------------------------------------------------------------
  async function dashboardPage() {
    const today = new Date(Date.now() + 8 * 3600e3);  // dates are China days (UTC+8), like the API's
    const iso = (d) => d.toISOString().slice(0, 10);
    const start = el("input", { type: "date", id: "dash-start", value: iso(new Date(today.getTime() - 6 * 864e5)) });
    const end = el("input", { type: "date", id: "dash-end", value: iso(today) });
    const body = el("div", { id: "dash-body" });
    page.replaceChildren(el("section", { class: "panel" },
      el("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); load(); } },
        el("h2", { class: "grow" }, "数据看板"), "从", start, "到", end, el("button", { type: "submit" }, "查询"))), body);

    async function load() {
      const d = await api("GET", `/admin/dashboard?start=${start.value}&end=${end.value}`);
      const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
      const kpis = [["会话数", d.conversations], ["客户消息", d.messages_in], ["发出消息", d.messages_out],
        ["机器人解决率", pct(d.bot_resolution_rate)], ["转人工率", pct(d.handoff_rate)],
        ["平均首次响应", fmtDuration(d.first_response_seconds)], ["平均会话时长", fmtDuration(d.resolution_seconds)],
        ["工单平均解决", fmtDuration(d.ticket_resolution_seconds)],
        ["CSAT", d.csat === null ? "—" : d.csat.toFixed(2) + ` / 5（${d.csat_count}）`], ["NPS", d.nps === null ? "—" : d.nps + `（${d.nps_count}）`]];
      const days = [];
      for (let t = new Date(d.start + "T00:00:00Z"); iso(t) <= d.end; t = new Date(t.getTime() + 864e5)) days.push(iso(t));
      const channels = [...new Set(d.series.map((p) => p.channel))];
      const seriesOf = (key) => channels.map((ch) => ({ name: window.HuikeLabels.CHANNEL[ch] || ch, values: days.map((day) => {
        const p = d.series.find((x) => x.day === day && x.channel === ch); return p ? p[key] : 0; }) }));
      const charts = el("div", { class: "charts" },
        el("div", { class: "panel", id: "chart-conversations" }, HuikeCharts.lines(days.map((x) => x.slice(5)), seriesOf("conversations"), { title: "各渠道会话数" })),
        el("div", { class: "panel", id: "chart-messages" }, HuikeCharts.lines(days.map((x) => x.slice(5)), seriesOf("messages"), { title: "各渠道客户消息数" })),
        el("div", { class: "panel" }, HuikeCharts.bars(d.complaints_by_category, { title: "投诉分类" })),
        el("div", { class: "panel" }, HuikeCharts.bars(d.customers_by_lifecycle, { title: "客户生命周期" })),
        el("div", { class: "panel" }, HuikeCharts.bars(d.customers_by_value_tier, { title: "客户价值分层" })));
      body.replaceChildren(el("div", { class: "kpis", id: "kpis" }, kpis.map(([label, value]) =>
        el("div", { class: "kpi" }, el("div", { class: "label" }, label), el("div", { class: "value" }, String(value))))), el("br"), charts);
      const insight = await api("GET", "/reports/insight").catch(() => null);
      if (insight) body.appendChild(insightSection(insight));
    }

    // churn risk and personas from the nightly insight run
    function insightSection(d) {
      const TRAITS = { spend: "累计消费", recency_days: "距上次下单(天)", orders: "订单数", p_repeat: "90天复购概率" };
      const rows = d.personas.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, String(p.size)),
        ...Object.keys(TRAITS).map((k) => el("td", {}, k === "p_repeat" ? ((p.traits[k] || 0) * 100).toFixed(0) + "%" : String(Math.round(p.traits[k] || 0))))));
      return el("div", { class: "charts", id: "insight" },
        el("div", { class: "panel" }, HuikeCharts.bars(d.churn_risk, { title: "流失风险" })),
        el("div", { class: "panel", id: "personas" }, el("h3", {}, "客户画像分群"),
          d.personas.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "画像"), el("th", {}, "人数"),
            ...Object.values(TRAITS).map((t) => el("th", {}, t)))), el("tbody", {}, ...rows))
            : el("p", { class: "muted" }, "尚未运行客户洞察")));
    }
    await load();
  }

  // --- canned responses ------------------------------------------------------------------
  async function cannedPage(me) {
    if (me.role === "agent") throw Object.assign(new Error("没有权限"), { status: 403 });  // agents use them in the console
    const table = el("table", { class: "grid", id: "canned-table" });
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "快捷回复"),
        el("button", { type: "button", id: "canned-new", onclick: () => edit(null) }, "新建快捷回复")),
      el("p", { class: "muted small" }, "客服在回复框输入 / 加快捷码即可插入。"), table));

    async function load() {
      const rows = await api("GET", "/console/canned");
      table.replaceChildren(el("thead", {}, el("tr", {}, ["快捷码", "标题", "内容", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((c) => el("tr", { dataset: { cannedId: c.id } },
          el("td", {}, "/" + c.shortcut), el("td", {}, c.title), el("td", { class: "wrap" }, c.text),
          el("td", {}, el("button", { type: "button", class: "link", onclick: () => edit(c) }, "编辑"),
            el("button", { type: "button", class: "link", onclick: async () => {
              if (!confirm("删除快捷回复 /" + c.shortcut + "？")) return;
              try { await api("DELETE", "/console/canned/" + c.id); toast("已删除", "ok"); await load(); }
              catch (e) { toast(e.message, "error"); }
            } }, "删除"))))));
      if (!rows.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 4, class: "muted" }, "还没有快捷回复"))));
    }

    function edit(c) {
      dialog(c ? "编辑快捷回复" : "新建快捷回复", [
        { name: "shortcut", label: "快捷码（字母、数字、下划线）", value: c && c.shortcut, required: true, max: 32 },
        { name: "title", label: "标题", value: c && c.title, required: true, max: 64 },
        { name: "text", label: "内容", type: "textarea", rows: 5, value: c && c.text, required: true, max: 2000 },
      ], async (v) => {
        const body = { shortcut: v.shortcut.trim().replace(/^\//, ""), title: v.title.trim(), text: v.text.trim() };
        if (c) await api("PUT", "/console/canned/" + c.id, body); else await api("POST", "/console/canned", body);
        toast("已保存", "ok");
        await load();
      });
    }
    await load();
  }

  // --- users -----------------------------------------------------------------------------
  async function usersPage(me) {
    const table = el("table", { class: "grid", id: "users-table" });
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "用户与角色"), el("button", { type: "button", id: "user-new", onclick: () => edit(null) }, "新建用户")), table));
    const roles = [["agent", "客服"], ["supervisor", "主管"], ["admin", "管理员"]];
    const groups = await api("GET", "/tickets/taxonomy").then((t) => t.skill_groups).catch(() => []);
    const skillsLabel = "技能组（逗号分隔，决定工单分配与升级" + (groups.length ? "；现有：" + groups.join("、") : "") + "）";

    async function load() {
      const users = await api("GET", "/admin/users");
      const now = Date.now();
      table.replaceChildren(el("thead", {}, el("tr", {}, ["用户名", "显示名", "角色", "技能组", "同时接待上限", "状态", "创建时间", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, users.map((u) => {
          const locked = u.locked_until && new Date(u.locked_until).getTime() > now;
          return el("tr", { dataset: { userId: u.id } }, el("td", {}, u.username), el("td", {}, u.display_name || "—"),
            el("td", {}, ROLE_NAMES[u.role] || u.role),
            el("td", { class: "skills" }, u.skills ? u.skills.split(",").map((s) => el("span", { class: "badge" }, s)) : el("span", { class: "muted" }, "—")),
            el("td", {}, String(u.max_concurrent)),
            el("td", {}, el("span", { class: "badge " + (u.active ? (locked ? "bad" : "ok") : "off") }, u.active ? (locked ? "已锁定" : "正常") : "已停用")),
            el("td", {}, fmtTime(u.created_at)),
            el("td", {}, el("button", { type: "button", class: "link", onclick: () => edit(u) }, "编辑"),
              // wrong passwords slow a (user, address) pair down, kept outside the user row: always offer to lift it
              u.active ? el("button", { type: "button", class: "link", onclick: async () => { await api("POST", `/admin/users/${u.id}/unlock`); toast("已解除登录限制", "ok"); load(); } }, "解除登录限制") : null));
        })));
    }

    function edit(u) {
      const fields = u ? [
        { name: "display_name", label: "显示名", value: u.display_name, max: 32 },
        { name: "role", label: "角色", type: "select", options: roles, value: u.role },
        { name: "skills", label: skillsLabel, value: u.skills, max: 128 },
        { name: "max_concurrent", label: "同时接待上限", type: "number", value: u.max_concurrent, min: 1, maxValue: 50 },
        { name: "active", label: "启用", type: "checkbox", value: u.active },
        { name: "password", label: "重置密码（留空不改，至少 8 位）", type: "password" },
      ] : [
        { name: "username", label: "用户名", required: true, max: 32 },
        { name: "display_name", label: "显示名", max: 32 },
        { name: "role", label: "角色", type: "select", options: roles, value: "agent" },
        { name: "skills", label: skillsLabel, max: 128 },
        { name: "max_concurrent", label: "同时接待上限", type: "number", value: 5, min: 1, maxValue: 50 },
        { name: "password", label: "初始密码（至少 8 位）", type: "password", required: true },
      ];
      dialog(u ? "编辑用户 " + u.username : "新建用户", fields, async (v) => {
        const body = { display_name: v.display_name, role: v.role, skills: v.skills.trim(), max_concurrent: Number(v.max_concurrent) };
        if (u) { body.active = v.active; if (v.password) body.password = v.password; await api("PUT", "/admin/users/" + u.id, body); }
        else { body.username = v.username.trim(); body.password = v.password; await api("POST", "/admin/users", body); }
        toast("已保存", "ok");
        await load();
      });
    }
    await load();
  }

  // --- channels --------------------------------------------------------------------------
  async function channelsPage() {
    const channels = await api("GET", "/admin/channels");
    const badge = { ready: "ok", demo: "warn", partial: "warn", off: "off" };
    page.replaceChildren(...channels.map((c) => el("section", { class: "panel", dataset: { channel: c.channel, state: c.state } },
      el("div", { class: "row" }, el("h2", { class: "grow" }, c.name), el("span", { class: "badge state " + badge[c.state] }, c.state_label)),
      c.notes.length ? el("ul", { class: "notes" }, c.notes.map((n) => el("li", {}, n))) : null,
      el("dl", { class: "info" }, el("dt", {}, c.channel === "webchat" ? "客户页面" : "回调地址"), el("dd", {}, el("code", {}, c.callback_url)),
        c.fields.flatMap((f) => [el("dt", {}, f.label), el("dd", {}, f.value || "（未设置）", f.secret && f.value ? el("span", { class: "muted small" }, "  已隐藏") : null)])),
      el("p", { class: "muted small" }, "凭据通过环境变量（HUIKE_…）配置，页面只显示末尾 4 位。"))));
    page.appendChild(await widgetPanel());
  }

  // The web-chat widget's welcome message and quick-reply buttons (one per line: 按钮文字|发送的内容).
  async function widgetPanel() {
    const cfg = await api("GET", "/webchat/config");
    const welcome = el("textarea", { id: "widget-welcome", rows: 2, maxlength: 300 });
    welcome.value = cfg.welcome;
    const quick = el("textarea", { id: "widget-quick", rows: 4 });
    quick.value = cfg.quick_replies.map((q) => q.title + "|" + q.text).join("\n");
    const save = async (ev) => {
      ev.preventDefault();
      const quick_replies = quick.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
        const [title, ...rest] = l.split("|");
        return { title: title.trim(), text: (rest.join("|") || title).trim() };
      });
      try { await api("PUT", "/webchat/config", { welcome: welcome.value.trim(), quick_replies }); toast("已保存", "ok"); }
      catch (e) { toast(e.message, "error"); }
    };
    return el("section", { class: "panel", id: "widget-config" },
      el("h2", {}, "网页客服：欢迎语与快捷回复"),
      el("form", { class: "form", onsubmit: save },
        el("label", {}, "欢迎语", welcome),
        el("label", {}, "快捷回复（每行一个：按钮文字|发送的内容，最多 6 个）", quick),
        el("div", { class: "row" }, el("button", { type: "submit", id: "widget-save" }, "保存"))));
  }

  // --- audit log -------------------------------------------------------------------------
  const AUDIT_GROUPS = [["", "全部操作"], ["ticket.", "工单"], ["customer.", "客户"], ["privacy.", "个人信息"], ["conversation.", "会话"],
    ["faq.", "知识库"], ["canned.", "快捷回复"], ["tag_rule.", "标签规则"], ["segment.", "分群"], ["care_rule.", "关怀规则"],
    ["user.", "用户"], ["attribute.", "自定义属性"], ["orders.", "订单导入"], ["customers.", "客户导入"]];
  const AUDIT_ACTIONS = { "ticket.open": "创建工单", "ticket.assign": "分配工单", "ticket.reassign": "改派工单", "ticket.transition": "工单状态变更",
    "ticket.resolve": "解决工单", "ticket.close": "关闭工单", "ticket.reopen": "重开工单", "ticket.escalate": "升级工单", "ticket.triage": "重新分诊",
    "customer.update": "编辑客户资料", "customer.tag": "添加标签", "customer.untag": "移除标签", "customer.merge": "合并客户", "customer.unmerge": "撤销合并",
    "customer.consent": "修改授权", "customer.stage": "修改生命周期", "privacy.export": "导出个人信息", "privacy.erase": "删除个人信息",
    "conversation.take_over": "接入会话", "conversation.transfer": "转接会话", "conversation.hand_back": "转回机器人", "conversation.close": "结束会话",
    "faq.create": "新建问答", "faq.update": "修改问答", "faq.delete": "删除问答", "faq.import": "导入问答", "canned.create": "新建快捷回复",
    "canned.update": "修改快捷回复", "canned.delete": "删除快捷回复", "tag_rule.save": "保存标签规则", "segment.save": "保存分群",
    "segment.delete": "删除分群", "segment.export": "导出分群", "care_rule.save": "保存关怀规则", "care_rule.run": "执行关怀规则",
    "user.create": "新建用户", "user.update": "修改用户", "user.unlock": "解锁用户", "user.lockout": "账号锁定", "user.password": "修改密码",
    "attribute.define": "定义属性", "orders.import": "导入订单", "customers.import": "导入客户" };
  const OBJECTS = { ticket: "工单", customer: "客户", faq: "问答", user: "用户", conversation: "会话", canned: "快捷回复", tag_rule: "标签规则",
    segment: "分群", care_rule: "关怀规则", attribute: "属性", merge: "合并" };
  const PAGE_SIZE = 50;
  const AUDIT_FIELDS = { name: "名称", question: "问题", answer: "答案", category: "分类", enabled: "启用", similar_questions: "相似问法",
    username: "用户名", display_name: "显示名", role: "角色", skills: "技能组", max_concurrent: "接待上限", active: "启用", password: "密码",
    status: "状态", severity: "级别", severity_reason: "级别原因", assignee_id: "处理人编号", note: "说明", reason: "原因", root_cause: "归因",
    resolution_code: "处理结果", number: "工单号", order_no: "订单号", first_response_due: "首次响应时限", resolution_due: "解决时限",
    reopen_count: "重开次数", tag_name: "标签", tag: "标签", mode: "模式", conditions: "条件", description: "说明", kind: "类型",
    params: "参数", segment_id: "分群编号", channels: "渠道", channel: "渠道", template: "模板", wechat_template: "模板消息",
    send_hour: "发送时间", shortcut: "快捷码", title: "标题", text: "内容", granted: "允许", purpose: "用途", stage: "生命周期",
    source_id: "并入的客户", target_id: "保留的客户", locked_until: "锁定至", failed_logins: "失败次数", format: "格式", created: "新增",
    updated: "更新", errors: "错误", claimed: "认领", sent: "已发送", skipped: "已跳过", failed: "失败", opted_out: "已退订",
    gender: "性别", region: "地区", birthday: "生日", points: "积分", member_level: "会员等级", count: "数量", agent_id: "客服编号",
    conversation_id: "会话编号", customer_id: "客户编号", from: "原", to: "新", last_active_at: "最近活跃", question_count: "问题数" };
  const CARE_KIND_NAMES = { birthday: "生日", festival: "节日", inactivity: "久未互动", lifecycle: "生命周期变化", welcome: "新关注欢迎",
    ticket_survey: "工单回访", nps: "NPS 调查", level_up: "会员升级", winback: "流失挽回" };
  const RESOLUTION = { refunded: "已退款", replaced: "已换货", reshipped: "已补发", compensated: "已补偿", repaired: "已维修/修复",
    explained: "已解释说明", no_fault: "经核实非我方问题", other: "其他" };

  async function auditPage() {
    const action = el("select", { id: "audit-action", "aria-label": "操作" }, AUDIT_GROUPS.map(([v, l]) => el("option", { value: v }, l)));
    const actor = el("input", { id: "audit-actor", placeholder: "操作人用户名", maxlength: 64 });
    const objectId = el("input", { id: "audit-object", placeholder: "对象编号", maxlength: 64, size: 8 });
    const start = el("input", { type: "date", id: "audit-start", "aria-label": "开始日期" });
    const end = el("input", { type: "date", id: "audit-end", "aria-label": "结束日期" });
    const table = el("table", { class: "grid", id: "audit-table" });
    const pager = el("div", { class: "row pager" });
    const cursors = [0];  // before_id of each page seen: 上一页 goes back one
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "审计日志")),
      el("form", { class: "row filters", onsubmit: (ev) => { ev.preventDefault(); cursors.length = 1; load(); } },
        action, actor, objectId, "从", start, "到", end, el("button", { type: "submit", id: "audit-filter" }, "筛选")),
      el("div", { class: "table-wrap" }, table), pager));
    action.addEventListener("change", () => { cursors.length = 1; load(); });

    async function load() {
      const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
      const f = { action: action.value, actor: actor.value.trim(), object_id: objectId.value.trim(), start: start.value, end: end.value };
      for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
      const before = cursors[cursors.length - 1];
      if (before) q.set("before_id", String(before));
      const rows = await api("GET", "/admin/audit?" + q);
      table.replaceChildren(el("thead", {}, el("tr", {}, ["时间", "操作人", "操作", "对象", "修改前", "修改后"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((r) => el("tr", { dataset: { auditId: r.id } }, el("td", {}, fmtTime(r.created_at)), el("td", {}, window.HuikeLabels.actor(r.actor)),
          el("td", {}, AUDIT_ACTIONS[r.action] || r.action),
          el("td", {}, objectLink(r)),
          el("td", {}, record(r.before)), el("td", {}, record(r.after))))));
      if (!rows.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 6, class: "muted" }, "没有符合条件的记录"))));
      pager.replaceChildren(
        el("button", { type: "button", class: "secondary", id: "audit-prev", disabled: cursors.length === 1 || null, onclick: () => { cursors.pop(); load(); } }, "上一页"),
        el("span", { class: "muted", id: "audit-page" }, `第 ${cursors.length} 页`),
        el("button", { type: "button", class: "secondary", id: "audit-next", disabled: rows.length < PAGE_SIZE || null,
          onclick: () => { cursors.push(rows[rows.length - 1].id); load(); } }, "下一页"));
    }

    function record(obj) {
      if (!obj || !Object.keys(obj).length) return el("span", { class: "muted" }, "—");
      return el("dl", { class: "kv" }, Object.entries(obj).flatMap(([k, v]) => [el("dt", {}, AUDIT_FIELDS[k] || k), el("dd", {}, value(k, v))]));
    }

    function value(k, v) {
      if (v === null || v === undefined || v === "") return "—";
      if (typeof v === "boolean") return v ? "是" : "否";
      if (typeof v === "object") return el("code", { class: "raw" }, JSON.stringify(v));
      const L = window.HuikeLabels;
      if (["status", "from_status", "to_status"].includes(k)) return L.TICKET_STATUS[v] || L.DELIVERY[v] || String(v);
      if (k === "role") return ROLE_NAMES[v] || String(v);
      if (k === "kind") return { ...CARE_KIND_NAMES }[v] || String(v);
      if (k === "channel") return L.CHANNEL[v] || String(v);
      if (k === "mode") return { sync: "同步", add: "只添加" }[v] || String(v);
      if (k === "severity") return L.SEVERITY[v] || String(v);
      if (k === "resolution_code") return RESOLUTION[v] || String(v);
      if (/_at$|_due$/.test(k)) return fmtTime(v);
      return String(v);
    }

    function objectLink(r) {
      const label = `${OBJECTS[r.object_type] || r.object_type} ${r.object_id}`;
      if (r.object_type === "ticket" && r.object_id) return el("a", { href: "/admin/tickets/" + r.object_id }, label);
      if (r.object_type === "customer" && r.object_id) return el("a", { href: "/admin/customers/" + r.object_id }, label);
      return label;
    }
    await load();
  }

  init().catch((e) => { if (e.status !== 401) toast(e.message || "加载失败", "error"); });
})();
