// Embed the Huike chat widget on any site: <script src="https://your-huike/static/webchat/embed.js" async></script>
(function () {
  "use strict";
  const origin = new URL(document.currentScript.src).origin;
  const button = document.createElement("button");
  button.textContent = "在线客服";
  button.setAttribute("aria-label", "打开在线客服");
  button.style.cssText = "position:fixed;right:20px;bottom:20px;z-index:2147483000;padding:12px 18px;border:0;" +
    "border-radius:24px;background:#07c160;color:#fff;font-size:15px;box-shadow:0 4px 12px rgba(0,0,0,.2);cursor:pointer";
  const frame = document.createElement("iframe");
  frame.src = origin + "/";
  frame.title = "在线客服";
  frame.style.cssText = "position:fixed;right:20px;bottom:76px;z-index:2147483000;width:380px;height:560px;" +
    "max-height:80vh;border:0;border-radius:10px;box-shadow:0 8px 24px rgba(0,0,0,.2);display:none;background:#fff";
  button.addEventListener("click", () => { frame.style.display = frame.style.display === "none" ? "block" : "none"; });
  document.body.appendChild(frame);
  document.body.appendChild(button);
})();
