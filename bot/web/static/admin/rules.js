// 分群 and 规则: segments, tag rules and care rules, all edited with the visual condition builder.
// The care rule editor: kind and its settings, audience, send hour, channels, guards, template with a
// preview for a sample customer, and per-rule delivery results.
(function () {
  "use strict";
  const { el, api, toast, fmtTime, dialog } = window.Huike;
  const L = window.HuikeLabels;
  const R = window.HuikeRules;
  const CARE_KINDS = { birthday: "生日", festival: "节日", inactivity: "久未互动", lifecycle: "生命周期变化",
    welcome: "新关注欢迎", ticket_survey: "工单回访", nps: "NPS 调查", level_up: "会员升级", winback: "流失挽回" };
  const CARE_CHANNELS = [["wechat_oa", "公众号"], ["wecom", "企业微信"], ["wechat_kf", "微信客服"], ["webchat", "网页"]];
  const STAGES = "潜在、新客、成长、成熟、衰退、流失、回流";

  // A dialog whose body is built by the caller; `save` reads the nodes it made.
  function formDialog(title, nodes, save) {
    const d = dialog(title, [], save);
    const form = d.querySelector("form");
    const anchor = form.querySelector(":scope > p.error");  // the dialog's own message line, not a builder's
    for (const n of nodes) form.insertBefore(n, anchor);
    d.classList.add("wide");
    return d;
  }
  const field = (label, input) => el("label", {}, label, input);

  // --- segments --------------------------------------------------------------------------
  async function segmentsPage(me) {
    const page = document.getElementById("page");
    const lead = me.role !== "agent";
    const table = el("table", { class: "grid", id: "segments-table" });
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "客户分群"),
        lead ? el("button", { type: "button", id: "segment-new", onclick: () => edit(null) }, "新建分群") : null),
      el("p", { class: "muted small" }, "分群是保存下来的条件，人数实时计算；关怀规则和客户搜索都可以使用。"), table));

    async function load() {
      const rows = await api("GET", "/segments");
      table.replaceChildren(el("thead", {}, el("tr", {}, ["名称", "说明", "人数", "更新时间", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((s) => el("tr", { dataset: { segmentId: s.id } },
          el("td", {}, el("a", { href: "/admin/customers?segment=" + s.id }, s.name)), el("td", {}, s.description || "—"),
          el("td", { class: "count" }, String(s.count)), el("td", {}, fmtTime(s.updated_at || s.created_at)),
          el("td", {}, lead ? [
            el("button", { type: "button", class: "link edit", onclick: () => edit(s) }, "编辑"),
            el("a", { class: "link", href: `/api/v1/segments/${s.id}/export`, download: `segment-${s.id}.csv` }, "导出"),
            el("button", { type: "button", class: "link", onclick: async () => {
              if (!confirm(`删除分群「${s.name}」？`)) return;
              try { await api("DELETE", "/segments/" + s.id); toast("已删除", "ok"); await load(); } catch (e) { toast(e.message, "error"); }
            } }, "删除")] : null)))));
      if (!rows.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 5, class: "muted" }, "还没有分群"))));
    }

    async function edit(s) {
      const ctx = await R.context();
      ctx.segments = ctx.segments.filter((x) => !s || x.id !== s.id);
      const name = el("input", { name: "seg-name", maxlength: 64, value: s ? s.name : "" });
      const description = el("input", { name: "seg-description", maxlength: 200, value: s ? s.description : "" });
      const b = R.builder({ ...ctx, conditions: s ? s.conditions : {}, previewPath: "/segments:preview", id: "segment-builder" });
      formDialog(s ? "编辑分群" : "新建分群", [field("名称", name), field("说明", description), el("div", { class: "label" }, "条件"), b.node], async () => {
        if (!name.value.trim()) throw new Error("请填写名称");
        const body = { name: name.value.trim(), description: description.value.trim(), conditions: b.value() };
        if (s) await api("PUT", "/segments/" + s.id, body); else await api("POST", "/segments", body);
        toast("分群已保存", "ok");
        await load();
      });
    }
    await load();
  }

  // --- rules -----------------------------------------------------------------------------
  async function rulesPage(me) {
    const page = document.getElementById("page");
    const canEdit = me.role === "admin";
    const tagPanel = el("section", { class: "panel", id: "tag-rules" });
    const carePanel = el("section", { class: "panel", id: "care-rules" });
    page.replaceChildren(tagPanel, carePanel);
    await Promise.all([tagRules(), careRules()]);

    function summary(cond) {
      const n = R.parse(cond || {});
      const text = (x) => {
        const not = x.neg ? "非（" : "";
        const end = x.neg ? "）" : "";
        if (x.kind === "group") return x.children.length ? not + x.children.map(text).join(x.mode === "all" ? " 且 " : " 或 ") + end : "全部客户";
        if (x.kind === "attr") return `${not}${R.attrLabel(x.attr)} ${R.opLabel(x.op)} ${Array.isArray(x.value) ? x.value.join("/") : x.value ?? ""}${end}`;
        if (x.kind === "tag") return `${not}标签 ${x.tag}${end}`;
        if (x.kind === "segment") return `${not}分群 ${x.segment}${end}`;
        if (x.kind === "orders") return `${not}${x.within || "?"} 天内订单 ≥ ${x.count || 0}${end}`;
        if (x.kind === "event") return `${not}${x.within || "?"} 天内 ${R.eventLabel(x.ev)} ${x.name || ""}${end}`;
        return JSON.stringify(x.raw);
      };
      return text(n);
    }

    async function tagRules() {
      let rules;
      try { rules = await api("GET", "/tag-rules"); }
      catch (e) { tagPanel.replaceChildren(el("h2", {}, "标签规则"), el("p", { class: "muted" }, e.message)); return; }
      tagPanel.replaceChildren(
        el("div", { class: "row" }, el("h2", { class: "grow" }, "标签规则"),
          canEdit ? el("button", { type: "button", id: "tag-rule-new", onclick: () => editTagRule(null) }, "新建标签规则") : null),
        el("div", { class: "table-wrap" }, el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, ["名称", "标签", "条件", "模式", "状态", "上次命中", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, rules.map((r) => el("tr", { dataset: { ruleId: r.id } },
            el("td", {}, r.name, el("div", { class: "muted small" }, r.description || "")),
            el("td", {}, el("span", { class: "badge" }, r.tag_name)),
            el("td", { class: "wrap small" }, summary(r.conditions)),
            el("td", {}, r.mode === "sync" ? "同步" : "只添加"),
            el("td", {}, el("span", { class: "badge " + (r.enabled ? "ok" : "off") }, r.enabled ? "启用" : "停用")),
            el("td", {}, String(r.last_count ?? "—")),
            el("td", {}, canEdit ? el("button", { type: "button", class: "link", onclick: () => editTagRule(r) }, "编辑") : null)))))));
    }

    async function editTagRule(r) {
      const ctx = await R.context();
      const name = el("input", { name: "rule-name", maxlength: 64, value: r ? r.name : "" });
      const tag = el("input", { name: "rule-tag", maxlength: 32, value: r ? r.tag_name : "" });
      const mode = el("select", { name: "rule-mode" }, el("option", { value: "sync" }, "同步（不再满足时移除）"), el("option", { value: "add" }, "只添加"));
      mode.value = r ? r.mode : "sync";
      const description = el("input", { name: "rule-description", maxlength: 200, value: r ? r.description : "" });
      const enabled = el("input", { type: "checkbox", name: "rule-enabled", checked: (r ? r.enabled : true) || null });
      const b = R.builder({ ...ctx, conditions: r ? r.conditions : {}, previewPath: "/tag-rules:preview", id: "tag-rule-builder" });
      formDialog(r ? "编辑标签规则" : "新建标签规则", [field("名称", name), field("打上标签", tag), el("div", { class: "label" }, "条件"), b.node,
        field("模式", mode), field("说明", description), el("label", {}, enabled, "启用")], async () => {
        if (!name.value.trim() || !tag.value.trim()) throw new Error("请填写名称和标签");
        const body = { name: name.value.trim(), tag_name: tag.value.trim(), conditions: b.value(), mode: mode.value,
          description: description.value.trim(), enabled: enabled.checked };
        const saved = r ? await api("PUT", `/tag-rules/${r.id}`, body) : await api("POST", "/tag-rules", body);
        toast(`已保存，当前匹配 ${saved.preview.count} 位客户`, "ok");
        await tagRules();
      });
    }

    async function careRules() {
      let rules;
      try { rules = await api("GET", "/care-rules"); }
      catch (e) { carePanel.replaceChildren(el("h2", {}, "关怀规则"), el("p", { class: "muted" }, e.message)); return; }
      carePanel.replaceChildren(
        el("div", { class: "row" }, el("h2", { class: "grow" }, "关怀规则"),
          canEdit ? el("button", { type: "button", id: "care-rule-new", onclick: () => editCareRule(null) }, "新建关怀规则") : null),
        el("div", { class: "table-wrap" }, el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, ["名称", "类型", "消息模板", "发送时间", "状态", "发送结果", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, rules.map((r) => el("tr", { dataset: { ruleId: r.id } },
            el("td", {}, r.name), el("td", {}, CARE_KINDS[r.kind] || r.kind), el("td", { class: "wrap" }, r.template),
            el("td", {}, `${r.send_hour}:00`),
            el("td", {}, el("span", { class: "badge " + (r.enabled ? "ok" : "off") }, r.enabled ? "启用" : "停用")),
            el("td", { class: "results" }, results(r.results)),
            el("td", {},
              el("button", { type: "button", class: "link", onclick: () => deliveries(r) }, "发送明细"),
              canEdit ? el("button", { type: "button", class: "link", onclick: () => editCareRule(r) }, "编辑") : null)))))));
    }

    function results(stats) {
      const entries = Object.entries(stats || {});
      if (!entries.length) return el("span", { class: "muted" }, "尚未发送");
      return entries.map(([key, n]) => {
        const [status, reason] = key.split(":");
        const label = (L.DELIVERY[status] || status) + (reason ? "（" + (L.DELIVERY_REASON[reason] || reason) + "）" : "");
        return el("span", { class: "badge " + ({ sent: "ok", replied: "ok", failed: "bad", opted_out: "warn" }[status] || "off") }, `${label} ${n}`);
      });
    }

    async function deliveries(r) {
      const rows = await api("GET", `/care-rules/${r.id}/deliveries?limit=100`);
      const d = dialog(`「${r.name}」发送明细`, [], async () => null);
      d.classList.add("wide");
      d.querySelector("form").insertBefore(el("div", { class: "table-wrap" }, el("table", { class: "grid", id: "deliveries-table" },
        el("thead", {}, el("tr", {}, ["客户", "周期", "结果", "原因", "渠道", "时间"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map((x) => el("tr", {}, el("td", {}, el("a", { href: "/admin/customers/" + x.customer_id }, "#" + x.customer_id)),
          el("td", {}, x.period), el("td", {}, L.DELIVERY[x.status] || x.status), el("td", {}, L.DELIVERY_REASON[x.reason] || x.reason || "—"),
          el("td", {}, L.CHANNEL[x.channel] || x.channel || "—"), el("td", {}, fmtTime(x.sent_at || x.created_at))))))), d.querySelector(".error"));
      if (!rows.length) d.querySelector("tbody").appendChild(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "还没有发送记录")));
      d.querySelector("#dialog-save").textContent = "关闭";
    }

    async function editCareRule(r) {
      const ctx = await R.context();
      const rule = r || { kind: "birthday", params: {}, conditions: {}, channels: [], template: "亲爱的{{ name }}，祝您生日快乐！", send_hour: 10, enabled: true };
      const name = el("input", { name: "care-name", maxlength: 64, value: r ? r.name : "" });
      const kind = el("select", { name: "care-kind" }, Object.entries(CARE_KINDS).map(([v, l]) => el("option", { value: v }, l)));
      kind.value = rule.kind;
      const params = el("div", { class: "care-params" });
      const p = { ...rule.params };
      function renderParams() {
        const k = kind.value;
        const num = (key, label, dflt) => field(label, el("input", { type: "number", min: 1, name: "param-" + key, value: p[key] ?? dflt, oninput: (ev) => { p[key] = Number(ev.target.value); } }));
        const list = (key, label, hint) => field(label, el("input", { name: "param-" + key, placeholder: hint, value: (p[key] || []).join("、"),
          oninput: (ev) => { p[key] = ev.target.value.split(/[,，、\s]+/).filter(Boolean); } }));
        params.replaceChildren(...({
          festival: [list("festivals", "节日", "如：春节、中秋节、国庆节")],
          inactivity: [num("days", "多少天未互动", 60)],
          lifecycle: [list("to_stages", "进入哪些阶段（空 = 任意变化）", STAGES)],
          welcome: [num("after_hours", "关注后多少小时", 24)],
          nps: [field("每隔几个月", el("select", { name: "param-every_months", onchange: (ev) => { p.every_months = Number(ev.target.value); } },
            [1, 2, 3, 4, 6, 12].map((m) => el("option", { value: m, selected: (p.every_months || 3) === m || null }, m + " 个月")))),
            num("active_days", "最近多少天内活跃的客户", 90)],
        }[k] || [el("p", { class: "muted small" }, "此类型没有额外设置。")]));
      }
      kind.addEventListener("change", renderParams);
      renderParams();
      const segment = el("select", { name: "care-segment" }, el("option", { value: "" }, "不限分群"), ctx.segments.map((s) => el("option", { value: s.id }, `${s.name}（${s.count}）`)));
      segment.value = rule.segment_id ? String(rule.segment_id) : "";
      const b = R.builder({ ...ctx, conditions: rule.conditions, previewPath: "/segments:preview", id: "care-builder" });
      const hour = el("select", { name: "care-hour" }, Array.from({ length: 24 }, (_, h) => el("option", { value: h }, `${h}:00（北京时间）`)));
      hour.value = String(rule.send_hour);
      const channels = CARE_CHANNELS.map(([v, l]) => el("label", { class: "inline" }, el("input", { type: "checkbox", value: v, checked: rule.channels.includes(v) || null }), l));
      const template = el("textarea", { name: "care-template", rows: 3, maxlength: 2000 });
      template.value = rule.template;
      const rendered = el("div", { class: "care-preview", id: "care-preview" });
      const guards = el("p", { class: "muted small", id: "care-guards" });
      const enabled = el("input", { type: "checkbox", checked: rule.enabled || null });
      let timer = null;
      async function renderPreview() {
        try {
          const out = await api("POST", "/care-rules:render", { template: template.value || " ", segment_id: segment.value ? Number(segment.value) : null,
            conditions: b.value(), params: p });
          rendered.replaceChildren(el("div", { class: "muted small" }, out.customer ? `示例客户：${out.customer.name || "#" + out.customer.id}` : "没有匹配的客户，使用示例数据"),
            el("div", { class: "bubble" }, out.text));
          const g = out.guards;
          guards.textContent = `发送前自动检查：客户已退订则跳过；每位客户每周最多 ${g.weekly_cap} 条关怀；${g.quiet_hours[0]}–${g.quiet_hours[1]} 免打扰时段顺延；公众号/微信客服需客户 ${g.wechat_window_hours} 小时内互动过（否则用模板消息）。`;
        } catch (e) { rendered.replaceChildren(el("p", { class: "error" }, e.message)); }
      }
      const later = () => { clearTimeout(timer); timer = setTimeout(renderPreview, 400); };
      template.addEventListener("input", later);
      segment.addEventListener("change", later);
      formDialog(r ? "编辑关怀规则" : "新建关怀规则", [
        field("名称", name), field("类型", kind), params,
        field("受众：分群", segment), el("div", { class: "label" }, "受众：附加条件"), b.node,
        field("发送时间", hour), el("div", { class: "label" }, "发送渠道（按勾选顺序优先；都不选则用客户最近使用的渠道）"), el("div", { class: "row" }, channels),
        field("消息模板（可用 {{ name }} {{ level }} {{ points }} {{ stage }} {{ festival }} {{ date }} {{ days }}）", template),
        el("div", { class: "label" }, "预览"), rendered, guards, el("label", {}, enabled, "启用"),
      ], async () => {
        if (!name.value.trim()) throw new Error("请填写名称");
        const body = { name: name.value.trim(), kind: kind.value, params: p, segment_id: segment.value ? Number(segment.value) : null,
          conditions: b.value(), channels: channels.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
          template: template.value.trim(), wechat_template: rule.wechat_template || null, send_hour: Number(hour.value), enabled: enabled.checked };
        if (r) await api("PUT", `/care-rules/${r.id}`, body); else await api("POST", "/care-rules", body);
        toast("关怀规则已保存", "ok");
        await careRules();
      });
      renderPreview();
    }
  }

  window.HuikePages = Object.assign(window.HuikePages || {}, { segments: segmentsPage, rules: rulesPage });
})();
