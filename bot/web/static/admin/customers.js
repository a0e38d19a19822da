// 客户: search with filters, and the customer 360 (identities, profile, tags, value, orders, tickets,
// surveys, care, timeline; merge with preview and undo; consent; PIPL export and erase for admins).
(function () {
  "use strict";
  const { el, api, toast, fmtTime, dialog } = window.Huike;
  const L = window.HuikeLabels;
  const STAGES = ["潜在", "新客", "成长", "成熟", "衰退", "流失", "回流"];
  const TIERS = ["高价值", "潜力", "一般", "低价值"];
  const PAGE = 30;
  const MERGE_TABLE = { channelidentity: "渠道身份", conversation: "会话", message: "消息", ticket: "工单", order: "订单",
    customertag: "标签", surveyresponse: "调查", caredelivery: "关怀记录", consent: "授权", customerevent: "行为事件",
    lifecycleevent: "生命周期记录", customervalue: "价值" };
  const FIELD = { name: "姓名", phone: "手机", gender: "性别", region: "地区", birthday: "生日", birth_month: "生日（月）",
    birth_day: "生日（日）", birthday_calendar: "历法", member_level: "会员等级", points: "积分", attributes: "自定义属性" };
  const opt = (pairs, all) => [el("option", { value: "" }, all), ...pairs.map(([v, l]) => el("option", { value: v }, l))];
  const chan = (c) => L.CHANNEL[c] || c;

  // --- search ----------------------------------------------------------------------------
  async function listPage(me, page) {
    const [tagList, segs] = await Promise.all([api("GET", "/tags").catch(() => []), api("GET", "/segments").catch(() => [])]);
    const full = me.role !== "agent";
    const q = el("input", { id: "c-q", type: "search", class: "grow", maxlength: 64,
      placeholder: full ? "姓名或手机号（可部分匹配）" : "姓名，或完整手机号" });
    const tag = el("select", { id: "c-tag", "aria-label": "标签" }, opt(tagList.map((t) => [t.name, `${t.name}（${t.customers}）`]), "全部标签"));
    const segment = el("select", { id: "c-segment", "aria-label": "分群" }, opt(segs.map((s) => [String(s.id), `${s.name}（${s.count}）`]), "全部分群"));
    const stage = el("select", { id: "c-stage", "aria-label": "生命周期" }, opt(STAGES.map((s) => [s, s]), "全部生命周期"));
    const tier = el("select", { id: "c-tier", "aria-label": "价值分层" }, opt(TIERS.map((s) => [s, s]), "全部价值分层"));
    const channel = el("select", { id: "c-channel", "aria-label": "渠道" }, opt(Object.entries(L.CHANNEL).slice(0, 4), "全部渠道"));
    const table = el("table", { class: "grid", id: "customers-table" });
    const total = el("span", { class: "muted", id: "customers-total" });
    const pager = el("div", { class: "row pager" });
    let offset = 0;
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "客户"), total),
      el("form", { class: "row filters", onsubmit: (ev) => { ev.preventDefault(); offset = 0; load(); } },
        q, el("button", { type: "submit", id: "c-search" }, "搜索")),
      el("div", { class: "row filters" }, tag, segment, stage, tier, channel),
      !full ? el("p", { class: "muted small" }, "您的角色看到的姓名和手机号已脱敏；按手机号查找请输入完整号码。") : null,
      el("div", { class: "table-wrap" }, table), pager));
    for (const s of [tag, segment, stage, tier, channel]) s.addEventListener("change", () => { offset = 0; load(); });
    segment.value = new URLSearchParams(location.search).get("segment") || "";  // from the 分群 page

    async function load() {
      const query = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
      const f = { q: q.value.trim(), tag: tag.value, segment: segment.value, stage: stage.value, tier: tier.value, channel: channel.value };
      for (const [k, v] of Object.entries(f)) if (v) query.set(k, v);
      let r;
      try { r = await api("GET", "/customers?" + query); } catch (e) {  // e.g. a partial number from a masked role
        total.textContent = "";
        table.replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "error", id: "customers-error" }, e.message))));
        return;
      }
      total.textContent = `共 ${r.total} 位`;
      table.replaceChildren(
        el("thead", {}, el("tr", {}, ["姓名", "手机", "渠道", "生命周期", "价值", "等级", "积分", "标签", "最近活跃"].map((h) => el("th", {}, h)))),
        el("tbody", {}, r.items.map((c) => el("tr", { class: "clickable", dataset: { customerId: c.id }, onclick: () => { location.href = "/admin/customers/" + c.id; } },
          el("td", {}, el("a", { href: "/admin/customers/" + c.id, class: "customer-link" }, c.name || `访客 ${c.id}`)),
          el("td", {}, c.phone || "—"),
          el("td", {}, (c.channels || []).map(chan).join("、") || "—"),
          el("td", {}, c.lifecycle_stage), el("td", {}, c.tier || "—"), el("td", {}, c.member_level || "—"), el("td", {}, String(c.points)),
          el("td", {}, (c.tags || []).slice(0, 4).map((t) => el("span", { class: "badge" }, t))),
          el("td", {}, fmtTime(c.last_active_at) || "—")))));
      if (!r.items.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 9, class: "muted" }, "没有找到客户"))));
      pager.replaceChildren(
        el("button", { type: "button", class: "secondary", disabled: offset === 0 || null, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "上一页"),
        el("span", { class: "muted" }, `第 ${offset / PAGE + 1} 页`),
        el("button", { type: "button", class: "secondary", disabled: offset + PAGE >= r.total || null, onclick: () => { offset += PAGE; load(); } }, "下一页"));
    }
    await load();
  }

  // --- customer 360 ------------------------------------------------------------------------
  async function detailPage(me, id, page) {
    const lead = me.role !== "agent";
    const admin = me.role === "admin";
    let attrLabels = {};

    async function load() {
      const [p, tl, tks, defs] = await Promise.all([api("GET", "/customers/" + id), api("GET", `/customers/${id}/timeline?limit=200`),
        api("GET", `/tickets?customer_id=${id}&limit=50`), api("GET", "/attributes").catch(() => [])]);
      attrLabels = Object.fromEntries(defs.map((d) => [d.key, d.label]));
      render(p, tl.items, tks);
    }

    const panel = (title, idName, ...body) => el("section", { class: "panel", id: idName }, el("h2", {}, title), ...body);
    const none = (text) => el("p", { class: "muted" }, text);
    const dl = (pairs, idName) => el("dl", { class: "info", id: idName || null }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));

    function render(p, items, tks) {
      const c = p.customer;
      const v = p.value;
      const masked = !lead;
      const of = (type) => items.filter((i) => i.type === type);
      const tagInput = el("input", { id: "tag-input", placeholder: "添加标签", maxlength: 32 });
      const merged = c.merged_into_id ? el("p", { class: "conflict" }, "该客户已合并到 ", el("a", { href: "/admin/customers/" + c.merged_into_id }, "客户 #" + c.merged_into_id)) : "";
      page.replaceChildren(
        el("div", { class: "row crumbs" }, el("a", { href: "/admin/customers" }, "← 客户列表")),
        merged,
        el("section", { class: "panel c360-head" },
          el("div", { class: "row" }, el("h2", { class: "grow", id: "customer-name" }, c.name || `访客 ${c.id}`),
            c.erased ? el("span", { class: "badge off" }, "个人信息已删除") : null,
            el("span", { class: "badge" }, c.lifecycle_stage), v ? el("span", { class: "badge ok" }, v.tier) : null,
            c.member_level ? el("span", { class: "badge warn" }, c.member_level) : null),
          dl([["手机", c.phone || "—"], ["积分", String(c.points)], ["首次接触", fmtTime(c.created_at)], ["最近活跃", fmtTime(c.last_active_at) || "—"]], "customer-summary"),
          masked ? el("p", { class: "muted small" }, "个人信息已按您的角色脱敏") : null),
        el("div", { class: "c360-grid" },
          panel("渠道身份", "c-identities", p.identities.length ? el("ul", { class: "plain" }, p.identities.map((i) => el("li", {},
            el("strong", {}, chan(i.channel)), " ", el("span", { class: "muted small" }, L.APP[i.app_id] || i.app_id), " ",
            el("span", { class: "badge " + (i.status === "active" ? "ok" : "off") }, L.IDENTITY_STATUS[i.status] || i.status),
            el("div", { class: "muted small" }, i.external_id + (i.unionid ? " · 已关联 UnionID" : "") + (i.last_inbound_at ? " · 最近 " + fmtTime(i.last_inbound_at) : ""))))) : none("暂无渠道身份")),
          panel("资料", "c-profile",
            dl([["性别", c.gender || "—"], ["生日", c.birthday || (c.birth_month ? `${c.birth_month} 月 ${c.birth_day} 日` : "—")],
              ["历法", c.birthday_calendar === "lunar" ? "农历" : "公历"], ["地区", c.region || "—"],
              ...Object.entries(c.attributes || {}).map(([k, val]) => [attrLabels[k] || k, String(val)])]),
            lead && !c.erased ? el("button", { type: "button", class: "secondary", id: "edit-profile", onclick: () => editProfile(c) }, "编辑资料") : null),
          panel("标签", "c-tags",
            el("div", { class: "tags" }, p.tags.map((t) => el("span", { class: "badge tag", dataset: { tag: t.name } }, t.name,
              el("span", { class: "muted small" }, " " + (L.TAG_SOURCE[t.source] || t.source)),
              el("button", { type: "button", class: "link untag", "aria-label": "移除标签 " + t.name, onclick: () => tagAct("DELETE", `/customers/${id}/tags/${encodeURIComponent(t.name)}`) }, "×")))),
            el("form", { class: "row tag-form", onsubmit: (ev) => { ev.preventDefault(); const n = tagInput.value.trim(); if (n) tagAct("POST", `/customers/${id}/tags`, { name: n }); } },
              tagInput, el("button", { type: "submit", class: "secondary", id: "tag-add" }, "添加"))),
          panel("价值与会员", "c-value", v ? dl([["价值分层", v.tier], ["订单数", String(v.order_count)], ["累计消费", "¥" + v.total_spend],
            ["最近下单", fmtTime(v.last_order_at) || "—"], ["RFM", `R${v.r} F${v.f} M${v.m}`], ["会员等级", c.member_level || "—"], ["积分", String(c.points)]])
            : dl([["会员等级", c.member_level || "—"], ["积分", String(c.points)], ["价值分层", "尚未计算"]])),
          panel("订单", "c-orders", el("p", { class: "muted small" }, `已支付 ${p.orders.count} 笔，合计 ¥${p.orders.total}`),
            of("order").length ? el("table", { class: "grid" }, el("tbody", {}, of("order").slice(0, 20).map((o) => el("tr", {},
              el("td", {}, o.order_no), el("td", {}, "¥" + o.amount), el("td", {}, L.ORDER_STATUS[o.status] || o.status), el("td", {}, fmtTime(o.at)))))) : none("暂无订单")),
          panel("工单", "c-tickets", tks.length ? el("ul", { class: "plain" }, tks.map((t) => el("li", { dataset: { ticketId: t.id } },
            el("a", { href: "/admin/tickets/" + t.id, class: "ticket-link" }, t.number || "#" + t.id), " ", t.category, " ",
            el("span", { class: "badge" }, L.TICKET_STATUS[t.status] || t.status), el("div", { class: "muted small" }, fmtTime(t.created_at))))) : none("暂无工单")),
          panel("满意度与 NPS", "c-surveys", of("survey").length ? el("ul", { class: "plain" }, of("survey").map((s) => el("li", {},
            s.kind === "nps" ? "NPS" : "工单满意度", "：", s.score === null ? "未评分" : s.score + " 分", el("div", { class: "muted small" }, fmtTime(s.at))))) : none("暂无调查结果")),
          panel("关怀记录", "c-care", of("care").length ? el("ul", { class: "plain" }, of("care").map((d) => el("li", {},
            el("span", { class: "badge " + (d.status === "sent" || d.status === "replied" ? "ok" : d.status === "failed" ? "bad" : "off") }, L.DELIVERY[d.status] || d.status),
            d.reason ? " " + (L.DELIVERY_REASON[d.reason] || d.reason) : "", d.text ? el("div", { class: "small" }, d.text) : null,
            el("div", { class: "muted small" }, fmtTime(d.at))))) : none("暂无关怀记录")),
          panel("授权", "c-consent", consentBlock(p.consents)),
          lead ? panel("合并客户", "c-merge", mergeBlock(p.merges)) : null,
          admin ? panel("个人信息（PIPL）", "c-privacy",
            el("p", { class: "muted small" }, "导出该客户的全部数据，或删除个人信息（保留匿名统计）。两项操作都会记入审计日志。"),
            el("div", { class: "row" },
              el("button", { type: "button", class: "secondary", id: "c-export", onclick: exportData }, "导出数据"),
              el("button", { type: "button", class: "danger", id: "c-erase", disabled: c.erased || null, onclick: () => erase(c) }, "删除个人信息"))) : null),
        panel("全部时间线", "c-timeline", el("ol", { class: "events" }, items.map((i) => el("li", { dataset: { kind: i.type } },
          el("div", { class: "row" }, el("strong", {}, L.TIMELINE[i.type] || "事件"), el("span", { class: "grow" }), el("span", { class: "muted small" }, fmtTime(i.at))),
          el("div", { class: "note-text" }, describe(i)))))));
    }

    function describe(i) {
      if (i.type === "message") return `${L.SENDER[i.sender] || i.sender}（${chan(i.channel)}）：${i.text}`;
      if (i.type === "ticket") return `工单 ${i.number || i.id} · ${i.category} · ${L.TICKET_STATUS[i.status] || i.status}`;
      if (i.type === "survey") return (i.kind === "nps" ? "NPS " : "满意度 ") + (i.score === null ? "未评分" : i.score + " 分");
      if (i.type === "order") return `订单 ${i.order_no} · ¥${i.amount} · ${L.ORDER_STATUS[i.status] || i.status}`;
      if (i.type === "care") return `${L.DELIVERY[i.status] || i.status}${i.reason ? "（" + (L.DELIVERY_REASON[i.reason] || i.reason) + "）" : ""} ${i.text || ""}`;
      return `${i.from || "—"} → ${i.to || "—"}`;
    }

    async function tagAct(method, path, body) {
      try { await api(method, path, body); await load(); } catch (e) { toast(e.message, "error"); }
    }

    function editProfile(c) {
      dialog("编辑资料", [
        { name: "name", label: "姓名", value: c.name, max: 64 },
        { name: "gender", label: "性别", type: "select", options: [["", "未知"], ["男", "男"], ["女", "女"]], value: c.gender || "" },
        { name: "region", label: "地区", value: c.region, max: 64 },
      ], async (v) => {
        await api("PATCH", "/customers/" + id, { name: v.name.trim() || null, gender: v.gender || null, region: v.region.trim() || null });
        toast("资料已保存", "ok");
        await load();
      });
    }

    function consentBlock(consents) {
      const state = (purpose) => {
        const row = consents.find((x) => x.purpose === purpose && x.channel === "*") || consents.find((x) => x.purpose === "*");
        return row ? row.granted : true;
      };
      return el("ul", { class: "plain" }, ["care", "marketing", "survey"].map((purpose) => {
        const granted = state(purpose);
        return el("li", { class: "row", dataset: { purpose } }, el("span", { class: "grow" }, L.CONSENT_PURPOSE[purpose]),
          el("span", { class: "badge " + (granted ? "ok" : "off") }, granted ? "允许" : "已退订"),
          el("button", { type: "button", class: "link", onclick: async () => {
            try { await api("POST", `/customers/${id}/consent`, { granted: !granted, channel: "*", purpose }); toast("已更新授权", "ok"); await load(); }
            catch (e) { toast(e.message, "error"); }
          } }, granted ? "设为退订" : "恢复"));
      }));
    }

    function mergeBlock(merges) {
      const source = el("input", { id: "merge-source", type: "number", min: 1, placeholder: "要并入的客户编号" });
      const preview = el("div", { id: "merge-preview" });
      return el("div", {},
        el("p", { class: "muted small" }, "把另一位客户（同一个人的重复档案）并入当前客户。先预览，确认后合并；合并可以撤销。"),
        el("form", { class: "row", onsubmit: async (ev) => {
          ev.preventDefault();
          const sid = Number(source.value);
          if (!sid) { toast("请输入客户编号", "error"); return; }
          try {
            const pv = await api("GET", `/customers/${id}/merge-preview?source_id=${sid}`);
            const moved = Object.entries(pv.moved).map(([t, n]) => `${MERGE_TABLE[t] || "其他记录"} ${n} 条`).join("、") || "没有需要移动的记录";
            preview.replaceChildren(el("div", { class: "merge-box" },
              el("p", {}, `将「${pv.source.name || "访客 " + pv.source.id}」（#${pv.source.id}）并入「${pv.target.name || "访客 " + pv.target.id}」（#${pv.target.id}）`),
              el("p", { class: "small" }, "将移动：" + moved),
              el("p", { class: "small" }, "将补全资料：" + (pv.filled.map((f) => FIELD[f] || f).join("、") || "无")),
              el("button", { type: "button", class: "danger", id: "merge-confirm", onclick: async () => {
                try { await api("POST", `/customers/${id}/merge`, { source_id: sid }); toast("已合并，可在下方撤销", "ok"); await load(); }
                catch (e) { toast(e.message, "error"); }
              } }, "确认合并")));
          } catch (e) { preview.replaceChildren(el("p", { class: "error" }, e.message)); }
        } }, source, el("button", { type: "submit", class: "secondary", id: "merge-preview-btn" }, "预览合并")),
        preview,
        merges.length ? el("ul", { class: "plain", id: "merge-history" }, merges.map((m) => el("li", { class: "row", dataset: { mergeId: m.id } },
          el("span", { class: "grow" }, `#${m.source_id} → #${m.target_id} · ${L.actor(m.actor)} · ${fmtTime(m.created_at)}`),
          m.undone_at ? el("span", { class: "badge off" }, "已撤销") : el("button", { type: "button", class: "link merge-undo", onclick: async () => {
            if (!confirm("撤销这次合并？移动过的记录会放回原客户。")) return;
            try { await api("POST", `/merges/${m.id}/undo`); toast("已撤销合并", "ok"); await load(); }
            catch (e) { toast(e.message, "error"); }
          } }, "撤销")))) : null);
    }

    async function exportData() {
      try {
        const data = await api("GET", `/customers/${id}/export`);
        const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
        const a = el("a", { href: url, download: `customer-${id}.json` });
        document.body.appendChild(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
        toast("已导出", "ok");
      } catch (e) { toast(e.message, "error"); }
    }

    function erase(c) {
      const expected = String(c.id);
      dialog("删除个人信息", [
        { name: "confirm", label: `此操作不可恢复：姓名、手机、生日、消息内容等将被清除。请输入客户编号 ${expected} 确认` },
      ], async (v) => {
        if (v.confirm.trim() !== expected) throw new Error("客户编号不一致，未删除");
        await api("POST", `/customers/${id}/erase`);
        toast("个人信息已删除", "ok");
        await load();
      });
    }

    await load();
  }

  window.HuikePages = Object.assign(window.HuikePages || {}, {
    customers: (me, id) => (id ? detailPage(me, id, document.getElementById("page")) : listPage(me, document.getElementById("page"))),
  });
})();
