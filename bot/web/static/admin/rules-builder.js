// The visual condition builder shared by segments, tag rules and care audiences. It edits the rule DSL
// (docs/scrm.md): groups all / any, "not" on any condition, and conditions on attributes, tags, orders,
// events and other segments; the live count and masked sample come from the preview API while editing.
// Raw JSON stays available as the "advanced" view.
(function () {
  "use strict";
  const { el, api } = window.Huike;
  const ATTRS = [["lifecycle_stage", "生命周期"], ["member_level", "会员等级"], ["points", "积分"], ["gender", "性别"],
    ["region", "地区"], ["last_active_at", "最近活跃"], ["created_at", "首次接触"], ["birth_month", "生日月份"],
    ["value.tier", "价值分层"], ["value.total_spend", "累计消费"], ["value.order_count", "订单数"], ["value.recency_days", "距上次下单天数"]];
  const OPS = [["eq", "等于"], ["ne", "不等于"], ["in", "属于（逗号分隔）"], ["not_in", "不属于（逗号分隔）"], ["gt", "大于"], ["gte", "大于等于"],
    ["lt", "小于"], ["lte", "小于等于"], ["contains", "包含"], ["startswith", "开头是"], ["is_null", "为空"], ["not_null", "不为空"],
    ["within_days", "最近 N 天内"], ["before_days", "N 天以前"]];
  const EVENTS = [["topic", "咨询话题（知识库分类）"], ["intent", "意图"], ["ticket", "工单（类别）"], ["message", "发消息"], ["survey", "调查"], ["care", "关怀"]];
  const KINDS = [["attr", "属性"], ["tag", "标签"], ["orders", "订单"], ["event", "行为事件"], ["segment", "分群"]];
  const NO_VALUE = new Set(["is_null", "not_null"]);

  const num = (v) => (v !== "" && !isNaN(Number(v)) ? Number(v) : v);
  const sel = (pairs, value, attrs) => {
    const s = el("select", attrs || {}, pairs.map(([v, l]) => el("option", { value: v }, l)));
    if (value !== undefined && value !== null) s.value = String(value);
    return s;
  };

  // A condition becomes a node {neg, kind, ...}; groups hold children. Unknown shapes stay as raw JSON.
  function parse(cond) {
    let neg = false;
    while (cond && typeof cond === "object" && "not" in cond && Object.keys(cond).length === 1) { neg = !neg; cond = cond.not; }
    if (!cond || typeof cond !== "object" || !Object.keys(cond).length) return { neg, kind: "group", mode: "all", children: [] };
    if ("all" in cond || "any" in cond) {
      const mode = "all" in cond ? "all" : "any";
      return { neg, kind: "group", mode, children: (cond[mode] || []).map(parse) };
    }
    if ("attr" in cond) return { neg, kind: "attr", attr: cond.attr, op: cond.op || "eq", value: cond.value };
    if ("tag" in cond) return { neg, kind: "tag", tag: Array.isArray(cond.tag) ? cond.tag.join(",") : cond.tag };
    if ("segment" in cond) return { neg, kind: "segment", segment: cond.segment };
    if ("orders" in cond) {
      const o = cond.orders || {};
      return { neg, kind: "orders", count: (o.count || {}).gte ?? "", sum: (o.sum || {}).gte ?? "", within: o.within_days ?? "" };
    }
    if ("event" in cond) {
      const e = cond.event || {};
      return { neg, kind: "event", ev: e.kind || "topic", name: e.name || "", count: (e.count || {}).gte ?? "", within: e.within_days ?? "" };
    }
    return { neg, kind: "raw", raw: cond };
  }

  function emit(n) {
    let c;
    if (n.kind === "group") {
      const parts = n.children.map(emit).filter((x) => x && Object.keys(x).length);
      c = parts.length ? { [n.mode]: parts } : {};
    } else if (n.kind === "attr") {
      c = { attr: n.attr, op: n.op };
      if (!NO_VALUE.has(n.op)) c.value = n.op === "in" || n.op === "not_in"
        ? String(n.value ?? "").split(/[,，、]/).map((x) => x.trim()).filter(Boolean).map(num) : num(String(n.value ?? "").trim());
    } else if (n.kind === "tag") {
      const tags = String(n.tag || "").split(/[,，、]/).map((x) => x.trim()).filter(Boolean);
      c = { tag: tags.length === 1 ? tags[0] : tags };
    } else if (n.kind === "segment") c = { segment: n.segment };
    else if (n.kind === "orders") {
      const o = {};
      if (n.count !== "") o.count = { gte: Number(n.count) };
      if (n.sum !== "") o.sum = { gte: Number(n.sum) };
      if (n.within !== "") o.within_days = Number(n.within);
      c = { orders: o };
    } else if (n.kind === "event") {
      const e = { kind: n.ev };
      if (n.name) e.name = n.name;
      if (n.count !== "") e.count = { gte: Number(n.count) };
      if (n.within !== "") e.within_days = Number(n.within);
      c = { event: e };
    } else c = n.raw;
    return n.neg && c && Object.keys(c).length ? { not: c } : c;
  }

  function fresh(kind) {
    return { attr: { neg: false, kind, attr: "lifecycle_stage", op: "eq", value: "" }, tag: { neg: false, kind, tag: "" },
      segment: { neg: false, kind, segment: "" }, orders: { neg: false, kind, count: 1, sum: "", within: 30 },
      event: { neg: false, kind, ev: "topic", name: "", count: "", within: 30 },
      group: { neg: false, kind, mode: "any", children: [] } }[kind];
  }

  // opts: {conditions, previewPath, segments: [{name}], attributes: [{key,label}], tags: [{name}], id}
  function builder(opts) {
    let root = parse(opts.conditions || {});
    if (root.kind !== "group") root = { neg: false, kind: "group", mode: "all", children: [root] };
    const attrs = [...ATTRS, ...(opts.attributes || []).map((a) => ["custom." + a.key, a.label])];
    const tree = el("div", { class: "cb-tree" });
    const preview = el("div", { class: "cb-preview muted", id: (opts.id || "cb") + "-preview", "aria-live": "polite" });
    const raw = el("textarea", { class: "cb-raw", rows: 10, hidden: true, "aria-label": "条件 JSON" });
    const rawError = el("p", { class: "error", hidden: true });
    const toggle = el("button", { type: "button", class: "link cb-toggle", onclick: () => flip() }, "高级：编辑 JSON");
    const box = el("div", { class: "cb", id: opts.id || null }, tree, raw, rawError, el("div", { class: "row" }, preview, el("span", { class: "grow" }), toggle));
    let timer = null;

    function changed() { clearTimeout(timer); timer = setTimeout(runPreview, 350); }

    async function runPreview() {
      if (!opts.previewPath) return;
      try {
        const conditions = value();
        if (!Object.keys(conditions).length) { preview.textContent = "尚未设置条件"; preview.className = "cb-preview muted"; return; }
        const p = await api("POST", opts.previewPath, { conditions });
        preview.textContent = `当前匹配 ${p.count} 位客户` + (p.examples && p.examples.length ? "，例如：" + p.examples.map((x) => x.name || "#" + x.id).join("、") : "");
        preview.className = "cb-preview";
      } catch (e) { preview.textContent = e.message; preview.className = "cb-preview error"; }
    }

    function flip() {
      if (raw.hidden) { raw.value = JSON.stringify(emit(root), null, 2); raw.hidden = false; tree.hidden = true; toggle.textContent = "返回可视化编辑"; return; }
      try {
        const parsed = JSON.parse(raw.value || "{}");
        root = parse(parsed);
        if (root.kind !== "group") root = { neg: false, kind: "group", mode: "all", children: [root] };
      } catch (e) { rawError.textContent = "JSON 格式不正确：" + e.message; rawError.hidden = false; return; }
      rawError.hidden = true; raw.hidden = true; tree.hidden = false; toggle.textContent = "高级：编辑 JSON";
      render(); changed();
    }

    function negBox(n) {
      return el("label", { class: "cb-not" }, el("input", { type: "checkbox", checked: n.neg || null, onchange: (ev) => { n.neg = ev.target.checked; changed(); } }), "不满足");
    }

    function groupView(g, parent) {
      const head = el("div", { class: "row cb-group-head" },
        sel([["all", "满足全部条件"], ["any", "满足任一条件"]], g.mode, { class: "cb-mode", onchange: (ev) => { g.mode = ev.target.value; changed(); } }),
        parent ? negBox(g) : null,
        el("span", { class: "grow" }),
        parent ? el("button", { type: "button", class: "link", onclick: () => { parent.children.splice(parent.children.indexOf(g), 1); render(); changed(); } }, "删除组") : null);
      const add = sel([["", "＋ 添加条件…"], ...KINDS, ["group", "条件组"]], "", { class: "cb-add", onchange: (ev) => {
        if (!ev.target.value) return;
        g.children.push(fresh(ev.target.value)); render(); changed();
      } });
      return el("div", { class: "cb-group" + (parent ? " nested" : "") }, head,
        el("div", { class: "cb-children" }, g.children.map((c) => (c.kind === "group" ? groupView(c, g) : leafView(c, g)))),
        g.children.length ? null : el("p", { class: "muted small" }, "没有条件：匹配全部客户"), add);
    }

    function input(n, key, attrs) {
      return el("input", { ...attrs, value: n[key] ?? "", oninput: (ev) => { n[key] = ev.target.value; changed(); } });
    }

    function leafView(n, parent) {
      let body;
      if (n.kind === "attr") {
        const value = input(n, "value", { class: "cb-value", placeholder: "值", hidden: NO_VALUE.has(n.op) || null });
        body = [sel(attrs, n.attr, { class: "cb-attr", onchange: (ev) => { n.attr = ev.target.value; changed(); } }),
          sel(OPS, n.op, { class: "cb-op", onchange: (ev) => { n.op = ev.target.value; value.hidden = NO_VALUE.has(n.op); changed(); } }), value];
      } else if (n.kind === "tag") {
        body = ["带有标签", input(n, "tag", { class: "cb-tag", placeholder: "标签（多个用逗号分隔，任一即可）", list: "cb-tags" })];
      } else if (n.kind === "segment") {
        body = ["属于分群", sel([["", "请选择分群"], ...(opts.segments || []).map((s) => [s.name, s.name])], n.segment, { class: "cb-segment", onchange: (ev) => { n.segment = ev.target.value; changed(); } })];
      } else if (n.kind === "orders") {
        body = ["最近", input(n, "within", { type: "number", min: 1, class: "cb-num", placeholder: "天数" }), "天内 已支付订单 ≥",
          input(n, "count", { type: "number", min: 0, class: "cb-num" }), "笔，金额 ≥", input(n, "sum", { type: "number", min: 0, class: "cb-num" }), "元"];
      } else if (n.kind === "event") {
        body = ["最近", input(n, "within", { type: "number", min: 1, class: "cb-num" }), "天内",
          sel(EVENTS, n.ev, { class: "cb-event", onchange: (ev) => { n.ev = ev.target.value; changed(); } }),
          input(n, "name", { class: "cb-name", placeholder: "名称（可空）" }), "次数 ≥", input(n, "count", { type: "number", min: 1, class: "cb-num" })];
      } else body = [el("code", {}, JSON.stringify(n.raw)), el("span", { class: "muted small" }, "（请在高级视图中编辑）")];
      return el("div", { class: "row cb-leaf", dataset: { kind: n.kind } },
        el("span", { class: "badge" }, (KINDS.find((k) => k[0] === n.kind) || [0, "其他"])[1]), ...body, negBox(n), el("span", { class: "grow" }),
        el("button", { type: "button", class: "link", "aria-label": "删除条件", onclick: () => { parent.children.splice(parent.children.indexOf(n), 1); render(); changed(); } }, "删除"));
    }

    function render() {
      tree.replaceChildren(groupView(root, null),
        el("datalist", { id: "cb-tags" }, (opts.tags || []).map((t) => el("option", { value: t.name }))));
    }

    function value() {
      if (!raw.hidden) { try { return JSON.parse(raw.value || "{}"); } catch (e) { throw new Error("JSON 格式不正确：" + e.message); } }
      return emit(root) || {};
    }

    render();
    runPreview();
    return { node: box, value };
  }

  async function context() {
    const [attributes, segments, tags] = await Promise.all([api("GET", "/attributes").catch(() => []),
      api("GET", "/segments").catch(() => []), api("GET", "/tags").catch(() => [])]);
    return { attributes, segments, tags };
  }

  const label = (pairs, key) => (pairs.find((p) => p[0] === key) || [0, key])[1];
  window.HuikeRules = { builder, context, parse, emit, attrLabel: (a) => label(ATTRS, a), opLabel: (o) => label(OPS, o).replace(/（.*）/, ""),
    eventLabel: (e) => label(EVENTS, e).replace(/（.*）/, "") };
})();
