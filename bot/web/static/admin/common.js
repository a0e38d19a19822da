// Shared helpers for the staff pages (login, console, admin). Text is always set with textContent.
(function () {
  "use strict";
  const state = { user: null, csrf: "" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(method, path, body, opts) {
    const headers = { "Accept": "application/json" };
    const init = { method, credentials: "same-origin", headers };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = state.csrf;
    if (body instanceof Blob || body instanceof ArrayBuffer) { init.body = body; }
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const r = await fetch("/api/v1" + path, init);
    if (r.status === 401 && !(opts && opts.noRedirect)) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.hash);
      throw new ApiError(401, "unauthorized", "请先登录");
    }
    if (r.status === 204) return null;
    const type = r.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await r.json() : await r.blob();
    if (!r.ok) throw new ApiError(r.status, (data && data.code) || "error", (data && data.message) || ("请求失败 " + r.status));
    return data;
  }

  async function loadSession() {
    const s = await api("GET", "/auth/session");
    state.user = s.user; state.csrf = s.csrf_token;
    return s.user;
  }

  function toast(message, kind) {
    let box = document.getElementById("toasts");
    if (!box) { box = el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" }); document.body.appendChild(box); }
    const t = el("div", { class: "toast " + (kind || "info"), text: message });
    box.appendChild(t);
    setTimeout(() => t.remove(), 4000);
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getMonth() + 1}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " 秒";
    if (s < 3600) return Math.floor(s / 60) + " 分 " + (s % 60) + " 秒";
    return Math.floor(s / 3600) + " 小时 " + Math.floor((s % 3600) / 60) + " 分";
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

  const ROLE_NAMES = { admin: "管理员", supervisor: "主管", agent: "客服" };

  function header(active) {
    const u = state.user;
    const links = [["/console", "客服工作台", ["agent", "supervisor", "admin"]],
      ["/admin/tickets", "工单", ["agent", "supervisor", "admin"]],
      ["/admin/customers", "客户", ["agent", "supervisor", "admin"]],
      ["/admin/segments", "分群", ["agent", "supervisor", "admin"]],
      ["/admin/faq", "知识库", ["supervisor", "admin"]],
      ["/admin/gaps", "未解决问题", ["supervisor", "admin"]],
      ["/admin/canned", "快捷回复", ["supervisor", "admin"]],
      ["/admin/dashboard", "数据看板", ["supervisor", "admin"]],
      ["/admin/rules", "规则", ["supervisor", "admin"]],
      ["/admin/users", "用户", ["admin"]],
      ["/admin/channels", "渠道", ["admin"]],
      ["/admin/audit", "审计日志", ["admin"]]];
    const nav = el("nav", { class: "topnav", "aria-label": "主导航" },
      links.filter(([, , roles]) => roles.includes(u.role)).map(([href, label]) =>
        el("a", { href, class: href === active || active.startsWith(href + "/") ? "active" : null }, label)));
    const logout = el("button", { class: "link", type: "button", onclick: async () => {
      await api("POST", "/auth/logout", { everywhere: false }).catch(() => null);
      location.href = "/login";
    } }, "退出");
    const logoutAll = el("button", { class: "link", type: "button", title: "退出所有设备上的登录", onclick: async () => {
      await api("POST", "/auth/logout", { everywhere: true }).catch(() => null);
      location.href = "/login";
    } }, "全部退出");
    return el("header", { class: "topbar" },
      el("div", { class: "brand" }, "慧客 ", el("span", { class: "muted" }, "Huike")),
      nav,
      el("div", { class: "me" }, el("span", { id: "me-name" }, (u.display_name || u.username) + " · " + (ROLE_NAMES[u.role] || u.role)), logout, logoutAll));
  }

  window.Huike = { el, api, ApiError, loadSession, toast, fmtTime, fmtDuration, header, state, ROLE_NAMES, dialog };
})();
