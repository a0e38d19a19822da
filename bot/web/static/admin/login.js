(function () {
  "use strict";
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const home = { agent: "/console", supervisor: "/console", admin: "/admin/faq" };

  function safeNext(role) {
    const next = new URLSearchParams(location.search).get("next") || "";
    // Only same-site paths: never an absolute or protocol-relative URL (open redirect).
    if (/^\/(?!\/)[\w\-\/#?=&.%]*$/.test(next) && !next.startsWith("/login")) return next;
    return home[role] || "/console";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const body = { username: form.username.value.trim(), password: form.password.value };
    try {
      const r = await fetch("/api/v1/auth/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: JSON.stringify(body),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) { error.textContent = data.message || "登录失败"; form.password.value = ""; return; }
      location.href = safeNext(data.user.role);
    } catch (e) {
      error.textContent = "网络异常，请稍后重试";
    }
  });
})();
