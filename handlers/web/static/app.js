// Otklik dashboard: the little script it needs. No library, nothing from outside.
(function () {
  "use strict";

  // Filters apply as soon as a list changes.
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Inside Telegram the Mini App gets its signed initData in the URL fragment
  // (tgWebAppData); the server checks the signature and opens a session.
  var signin = document.getElementById("signin");
  if (!signin) { return; }
  var hash = window.location.hash.slice(1);
  var initData = new URLSearchParams(hash).get("tgWebAppData");
  if (!initData) { return; }
  var status = document.getElementById("miniapp-status");
  status.hidden = false;
  var body = new URLSearchParams();
  body.set("initData", initData);
  fetch("/auth/telegram", { method: "POST", body: body, credentials: "same-origin" })
    .then(function (response) {
      if (response.ok) {
        window.location.replace(window.location.pathname + window.location.search);
      } else {
        status.textContent = "Telegram не подтвердил вход. Отправьте боту /web, чтобы получить ссылку.";
      }
    })
    .catch(function () { status.textContent = "Нет связи с сервером. Попробуйте ещё раз."; });
})();
