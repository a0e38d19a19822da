// Admin pages: FAQ (edit, 试一试, import/export), dashboard, rules, users, channels, audit log.
(function () {
  "use strict";
  const { el, api, loadSession, toast, fmtTime, fmtDuration, header, state, ROLE_NAMES } = window.Huike;
  const page = document.getElementById("page");
  const section = (location.pathname.split("/")[2] || "faq");
  const CARE_KINDS = { birthday: "生日", festival: "节日", inactivity: "久未互动", lifecycle: "生命周期变化",
    welcome: "新关注", ticket_survey: "工单回访", nps: "NPS 调查", level_up: "会员升级" };
  const sections = { faq: faqPage, canned: cannedPage, dashboard: dashboardPage, rules: rulesPage, users: usersPage, channels: channelsPage, audit: auditPage,
    ...(window.HuikeAdminSections || {}) };  // pages in their own files (gaps.js) register here

  async function init() {
    const user = await loadSession();
    document.getElementById("top").appendChild(header("/admin/" + section));
    const render = sections[section];
    if (!render) { page.replaceChildren(el("p", {}, "页面不存在")); return; }
    try { await render(user); }
    catch (e) {
      if (e.status === 403) page.replaceChildren(el("div", { class: "panel" }, el("h2", {}, "没有权限"), el("p", { class: "muted" }, "您的角色无法访问此页面。")));
      else toast(e.message, "error");
    }
  }

  function dialog(title, fields, onSave) {
    const form = el("form", { method: "dialog", class: "form" });
    const inputs = {};
    for (const f of fields) {
      let input;
      if (f.type === "textarea") input = el("textarea", { name: f.name, rows: f.rows || 4, maxlength: f.max || null, required: f.required || null });
      else if (f.type === "select") input = el("select", { name: f.name }, f.options.map(([v, l]) => el("option", { value: v }, l)));
      else if (f.type === "checkbox") input = el("input", { type: "checkbox", name: f.name });
      else input = el("input", { type: f.type || "text", name: f.name, maxlength: f.max || null, required: f.required || null, list: f.list || null, min: f.min, max: f.maxValue });
      if (f.type === "checkbox") input.checked = !!f.value; else input.value = f.value === undefined || f.value === null ? "" : f.value;
      inputs[f.name] = input;
      form.appendChild(el("label", {}, f.label, input));
    }
    const error = el("p", { class: "error", role: "alert" });
    const d = el("dialog", {}, el("h2", {}, title), form);
    form.appendChild(error);
    form.appendChild(el("div", { class: "row" }, el("span", { class: "grow" }),
      el("button", { type: "button", class: "secondary", onclick: () => { d.close(); d.remove(); } }, "取消"),
      el("button", { type: "submit", id: "dialog-save" }, "保存")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const values = {};
      for (const [k, input] of Object.entries(inputs)) values[k] = input.type === "checkbox" ? input.checked : input.value;
      try { await onSave(values); d.close(); d.remove(); }
      catch (e) { error.textContent = e.message; }
    });
    document.body.appendChild(d);
    d.showModal();
    return d;
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
        el("span", { class: "muted" }, `意图：${r.intent}（${(r.confidence * 100).toFixed(0)}%）`)),
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
      const seriesOf = (key) => channels.map((ch) => ({ name: ch, values: days.map((day) => {
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

  // --- rules (the SCRM area provides the engine and its API) --------------------------------
  async function rulesPage(me) {
    const canEdit = me.role === "admin";
    const tagPanel = el("section", { class: "panel", id: "tag-rules" });
    const carePanel = el("section", { class: "panel", id: "care-rules" });
    page.replaceChildren(tagPanel, carePanel);
    await Promise.all([tagRules(), careRules()]);

    async function tagRules() {
      let rules;
      try { rules = await api("GET", "/tag-rules"); }
      catch (e) { tagPanel.replaceChildren(el("h2", {}, "标签规则"), el("p", { class: "muted" }, e.message)); return; }
      tagPanel.replaceChildren(
        el("div", { class: "row" }, el("h2", { class: "grow" }, "标签规则"),
          canEdit ? el("button", { type: "button", id: "tag-rule-new", onclick: () => editTagRule(null) }, "新建标签规则") : null),
        el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, ["名称", "标签", "条件", "状态", "上次命中", "预览", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, rules.map((r) => {
            const preview = el("span", { class: "muted" });
            return el("tr", { dataset: { ruleId: r.id } },
              el("td", {}, r.name, el("div", { class: "muted small" }, r.description || "")),
              el("td", {}, el("span", { class: "badge" }, r.tag_name)),
              el("td", {}, el("pre", { class: "json" }, JSON.stringify(r.conditions, null, 1))),
              el("td", {}, el("span", { class: "badge " + (r.enabled ? "ok" : "off") }, r.enabled ? "启用" : "停用")),
              el("td", {}, String(r.last_count ?? "—")),
              el("td", {}, preview),
              el("td", {},
                el("button", { type: "button", class: "link", onclick: () => previewConditions(r.conditions, preview) }, "预览匹配"),
                canEdit ? el("button", { type: "button", class: "link", onclick: () => editTagRule(r) }, "编辑") : null));
          }))));
    }

    async function previewConditions(conditions, target) {
      try {
        const p = await api("POST", "/tag-rules:preview", { conditions });
        target.textContent = `当前匹配 ${p.count} 位客户` + (p.examples.length ? "，例如：" + p.examples.map((x) => x.name || ("#" + x.id)).join("、") : "");
      } catch (e) { target.textContent = e.message; }
    }

    function editTagRule(r) {
      const d = dialog(r ? "编辑标签规则" : "新建标签规则", [
        { name: "name", label: "名称", value: r && r.name, required: true, max: 64 },
        { name: "tag_name", label: "打上标签", value: r && r.tag_name, required: true, max: 32 },
        { name: "conditions", label: "条件（JSON，规则语言见 SCRM 文档）", type: "textarea", rows: 8, value: JSON.stringify(r ? r.conditions : {}, null, 2) },
        { name: "mode", label: "模式", type: "select", options: [["sync", "同步（不再满足时移除）"], ["add", "只添加"]], value: r ? r.mode : "sync" },
        { name: "description", label: "说明", value: r && r.description, max: 200 },
        { name: "enabled", label: "启用", type: "checkbox", value: r ? r.enabled : true },
      ], async (v) => {
        const body = { name: v.name, tag_name: v.tag_name, conditions: parseJson(v.conditions), mode: v.mode, description: v.description, enabled: v.enabled };
        const saved = r ? await api("PUT", `/tag-rules/${r.id}`, body) : await api("POST", "/tag-rules", body);
        toast(`已保存，当前匹配 ${saved.preview.count} 位客户`, "ok");
        await tagRules();
      });
      const live = el("p", { class: "muted", id: "rule-preview" });
      const check = el("button", { type: "button", class: "secondary", onclick: () => {
        try { previewConditions(parseJson(d.querySelector("textarea[name=conditions]").value), live); }
        catch (e) { live.textContent = e.message; }
      } }, "预览匹配人数");
      d.querySelector("form").insertBefore(el("div", { class: "row" }, check, live), d.querySelector(".error"));
    }

    async function careRules() {
      let rules;
      try { rules = await api("GET", "/care-rules"); }
      catch (e) { carePanel.replaceChildren(el("h2", {}, "关怀规则"), el("p", { class: "muted" }, e.message)); return; }
      carePanel.replaceChildren(
        el("div", { class: "row" }, el("h2", { class: "grow" }, "关怀规则"),
          canEdit ? el("button", { type: "button", onclick: () => editCareRule(null) }, "新建关怀规则") : null),
        el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, ["名称", "类型", "消息模板", "发送时间", "状态", "今天预览", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, rules.map((r) => {
            const preview = el("span", { class: "muted" });
            return el("tr", { dataset: { ruleId: r.id } },
              el("td", {}, r.name), el("td", {}, CARE_KINDS[r.kind] || r.kind), el("td", { class: "wrap" }, r.template),
              el("td", {}, `${r.send_hour}:00`),
              el("td", {}, el("span", { class: "badge " + (r.enabled ? "ok" : "off") }, r.enabled ? "启用" : "停用")),
              el("td", {}, preview),
              el("td", {},
                el("button", { type: "button", class: "link", onclick: async () => {
                  try {
                    const p = await api("GET", `/care-rules/${r.id}/preview`);
                    preview.textContent = `今天会发给 ${p.total} 位客户` + (p.rows.length ? "，例如：" + p.rows.slice(0, 3).map((x) => x.text).join(" / ") : "");
                  } catch (e) { preview.textContent = e.message; }
                } }, "预览"),
                canEdit ? el("button", { type: "button", class: "link", onclick: () => editCareRule(r) }, "编辑") : null));
          }))));
    }

    function editCareRule(r) {
      const fields = ["kind", "params", "segment_id", "conditions", "channels", "template", "wechat_template", "send_hour", "enabled"];
      const current = r ? Object.fromEntries(fields.map((k) => [k, r[k]])) : { kind: "birthday", params: {}, conditions: {}, channels: [], template: "", send_hour: 10, enabled: true };
      dialog(r ? "编辑关怀规则" : "新建关怀规则", [
        { name: "name", label: "名称", value: r && r.name, required: true, max: 64 },
        { name: "json", label: "规则内容（JSON）", type: "textarea", rows: 12, value: JSON.stringify(current, null, 2) },
      ], async (v) => {
        const body = { ...parseJson(v.json), name: v.name };
        if (r) await api("PUT", `/care-rules/${r.id}`, body); else await api("POST", "/care-rules", body);
        toast("已保存", "ok");
        await careRules();
      });
    }

    function parseJson(text) {
      try { return JSON.parse(text || "{}"); } catch (e) { throw new Error("JSON 格式不正确：" + e.message); }
    }
  }

  // --- canned responses ------------------------------------------------------------------
  async function cannedPage() {
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

    async function load() {
      const users = await api("GET", "/admin/users");
      const now = Date.now();
      table.replaceChildren(el("thead", {}, el("tr", {}, ["用户名", "显示名", "角色", "同时接待上限", "状态", "创建时间", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, users.map((u) => {
          const locked = u.locked_until && new Date(u.locked_until).getTime() > now;
          return el("tr", { dataset: { userId: u.id } }, el("td", {}, u.username), el("td", {}, u.display_name || "—"),
            el("td", {}, ROLE_NAMES[u.role] || u.role), el("td", {}, String(u.max_concurrent)),
            el("td", {}, el("span", { class: "badge " + (u.active ? (locked ? "bad" : "ok") : "off") }, u.active ? (locked ? "已锁定" : "正常") : "已停用")),
            el("td", {}, fmtTime(u.created_at)),
            el("td", {}, el("button", { type: "button", class: "link", onclick: () => edit(u) }, "编辑"),
              locked ? el("button", { type: "button", class: "link", onclick: async () => { await api("POST", `/admin/users/${u.id}/unlock`); toast("已解锁", "ok"); load(); } }, "解锁") : null));
        })));
    }

    function edit(u) {
      const fields = u ? [
        { name: "display_name", label: "显示名", value: u.display_name, max: 32 },
        { name: "role", label: "角色", type: "select", options: roles, value: u.role },
        { name: "max_concurrent", label: "同时接待上限", type: "number", value: u.max_concurrent, min: 1, maxValue: 50 },
        { name: "active", label: "启用", type: "checkbox", value: u.active },
        { name: "password", label: "重置密码（留空不改，至少 8 位）", type: "password" },
      ] : [
        { name: "username", label: "用户名", required: true, max: 32 },
        { name: "display_name", label: "显示名", max: 32 },
        { name: "role", label: "角色", type: "select", options: roles, value: "agent" },
        { name: "max_concurrent", label: "同时接待上限", type: "number", value: 5, min: 1, maxValue: 50 },
        { name: "password", label: "初始密码（至少 8 位）", type: "password", required: true },
      ];
      dialog(u ? "编辑用户 " + u.username : "新建用户", fields, async (v) => {
        const body = { display_name: v.display_name, role: v.role, max_concurrent: Number(v.max_concurrent) };
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
    page.replaceChildren(...channels.map((c) => el("section", { class: "panel", dataset: { channel: c.channel } },
      el("div", { class: "row" }, el("h2", { class: "grow" }, c.name), el("span", { class: "badge " + (c.configured ? "ok" : "off") }, c.configured ? "已配置" : "未配置")),
      el("dl", { class: "info" }, c.fields.flatMap((f) => [el("dt", {}, f.label), el("dd", {}, f.value || "（未设置）", f.secret && f.value ? el("span", { class: "muted small" }, "  已隐藏") : null)])),
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
  async function auditPage() {
    const action = el("input", { id: "audit-action", placeholder: "操作，例如 faq." });
    const actor = el("input", { id: "audit-actor", placeholder: "操作人" });
    const table = el("table", { class: "grid", id: "audit-table" });
    page.replaceChildren(el("section", { class: "panel" },
      el("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); load(); } }, el("h2", { class: "grow" }, "审计日志"), action, actor, el("button", { type: "submit" }, "筛选")), table));
    async function load() {
      const rows = await api("GET", "/admin/audit?" + new URLSearchParams({ action: action.value.trim(), actor: actor.value.trim() }));
      table.replaceChildren(el("thead", {}, el("tr", {}, ["时间", "操作人", "操作", "对象", "修改前", "修改后"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, fmtTime(r.created_at)), el("td", {}, r.actor), el("td", {}, r.action),
          el("td", {}, `${r.object_type} ${r.object_id}`),
          el("td", {}, el("pre", { class: "json" }, JSON.stringify(r.before, null, 1))),
          el("td", {}, el("pre", { class: "json" }, JSON.stringify(r.after, null, 1)))))));
    }
    await load();
  }

  init().catch((e) => { if (e.status !== 401) toast(e.message || "加载失败", "error"); });
})();
