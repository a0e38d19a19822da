// 未解决问题 (content gaps): what the bot could not answer directly, grouped; one click teaches the FAQ.
(function () {
  "use strict";
  const { el, api, toast } = window.Huike;

  async function gapsPage() {
    const page = document.getElementById("page");
    const days = el("select", { id: "gap-days" }, el("option", { value: "7" }, "近 7 天"), el("option", { value: "30" }, "近 30 天"));
    const summary = el("p", { class: "muted", id: "gap-summary" });
    const table = el("table", { class: "grid", id: "gap-table" });
    page.replaceChildren(el("section", { class: "panel" },
      el("div", { class: "row" }, el("h2", { class: "grow" }, "未解决问题"), days),
      el("p", { class: "muted small" }, "机器人兜底或反问澄清的客户问题，按相似度归组。把一组加为已有问答的相似问法，或新建问答草稿（填写答案后启用）。"),
      summary, table));
    days.addEventListener("change", load);

    async function load() {
      const [report, faqs] = await Promise.all([api("GET", "/admin/gaps?days=" + days.value), api("GET", "/admin/faqs?enabled=true")]);
      summary.textContent = `共 ${report.messages} 条客户消息未能直接回答，归为 ${report.groups.length} 组`;
      table.replaceChildren(el("thead", {}, el("tr", {}, ["客户问法", "次数", "兜底 / 反问", "加入问答", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, report.groups.map((g) => row(g, faqs))));
      if (!report.groups.length) table.appendChild(el("tbody", {}, el("tr", {}, el("td", { colspan: 5, class: "muted" }, "这段时间没有未解决的问题"))));
    }

    function row(g, faqs) {
      const texts = g.examples.map((x) => x.text);
      const target = el("select", { class: "gap-target", "aria-label": "选择问答" },
        el("option", { value: "" }, "选择已有问答…"),
        faqs.map((f) => el("option", { value: f.id, selected: g.suggestion && g.suggestion.faq_id === f.id ? true : null }, `#${f.id} ${f.question}`)));
      const assign = el("button", { type: "button", class: "gap-assign", onclick: async () => {
        if (!target.value) { toast("请先选择问答", "error"); return; }
        try {
          const faq = await api("POST", "/admin/gaps/assign", { faq_id: Number(target.value), texts });
          toast(`已加为「${faq.question}」的相似问法，机器人已使用新内容`, "ok");
          await load();
        } catch (e) { toast(e.message, "error"); }
      } }, "加为相似问法");
      const draft = el("button", { type: "button", class: "secondary gap-draft", onclick: async () => {
        try {
          const faq = await api("POST", "/admin/gaps/draft", { texts });
          toast(`已新建问答草稿 #${faq.id}，请在知识库填写答案后启用`, "ok");
          await load();
        } catch (e) { toast(e.message, "error"); }
      } }, "新建问答草稿");
      return el("tr", { class: "gap-group" },
        el("td", {}, el("div", { class: "question" }, g.leader),
          el("div", { class: "muted small" }, g.examples.slice(1).map((x) => x.text + (x.count > 1 ? `（${x.count}）` : "")).join("；"))),
        el("td", { class: "gap-count" }, String(g.count)),
        el("td", {}, el("span", { class: "badge bad" }, `兜底 ${g.fallback}`), " ", el("span", { class: "badge warn" }, `反问 ${g.clarify}`)),
        el("td", {}, target, g.suggestion ? el("div", { class: "muted small" }, `最接近：${g.suggestion.question}（${g.suggestion.score.toFixed(2)}）`) : null),
        el("td", {}, el("div", { class: "row" }, assign, draft)));
    }
    await load();
  }

  window.HuikeAdminSections = Object.assign(window.HuikeAdminSections || {}, { gaps: gapsPage });
})();
