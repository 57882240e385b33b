// boltgate dashboard: small enhancements only; every page works without this script.
(function () {
  "use strict";

  // A page restored from the back/forward cache may show data after sign-out: fetch it again
  // (the server then answers with the sign-in page).
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.getElementById("main").dataset.private === "1") {
      window.location.reload();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList && form.classList.contains("confirm") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) return;
    var field = document.getElementById(button.dataset.copy);
    if (!field) return;
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(done, function () {});
    }
  });
})();
