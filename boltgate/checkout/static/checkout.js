// boltgate checkout: live status (Server-Sent Events, polling fallback), countdown, copy buttons.
// The page works without this script (it refreshes itself); this only makes it better.
(function () {
  "use strict";
  var root = document.getElementById("checkout");
  if (!root || !root.dataset.invoiceId) return;

  var data = root.dataset;
  var state = data.status;
  var expiresAt = Date.parse(data.expiresAt);
  var live = document.getElementById("live");
  var countdown = document.getElementById("countdown");
  var POLL_MS = 3000; // the API asks polling clients for at most one request every 3 s
  var REDIRECT_MS = 1500;
  var pollTimer = null;
  var source = null;

  function show(name) {
    ["open", "paid", "expired"].forEach(function (s) {
      var el = document.getElementById("state-" + s);
      if (el) el.hidden = s !== name;
    });
  }

  function tellParent(status) {
    if (window.parent !== window) {
      try { window.parent.postMessage({ invoiceId: data.invoiceId, status: status }, "*"); } catch (e) { /* ignore */ }
    }
  }

  function finish() {
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function apply(status) {
    var next = status === "paid" || status === "refunded" ? "paid" : status === "expired" ? "expired" : "open";
    if (next === "open" && Date.now() >= expiresAt) next = "expired";
    if (next === state) return;
    state = next;
    root.dataset.status = next;
    show(next);
    tellParent(status);
    if (next === "paid") {
      finish();
      live.textContent = data.msgPaid;
      var button = document.getElementById("continue");
      if (button) button.focus();
      if (data.successUrl) {
        setTimeout(function () { window.location.assign(data.successUrl); }, REDIRECT_MS);
      }
    } else if (next === "expired") {
      live.textContent = data.msgExpired;
      // a late payment is still possible until the gateway gives up: keep listening
    }
  }

  function poll() {
    fetch(data.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) apply(body.status); })
      .catch(function () { /* next tick */ });
  }

  function startPolling() {
    if (!pollTimer && state === "open") pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function listen() {
    if (!("EventSource" in window)) { startPolling(); return; }
    source = new EventSource(data.eventsUrl);
    source.addEventListener("status", function (e) {
      stopPolling();
      try { apply(JSON.parse(e.data).status); } catch (err) { /* ignore a bad frame */ }
    });
    source.onopen = function () { root.dataset.live = "open"; };
    source.onerror = function () {
      // EventSource reconnects by itself; poll meanwhile so nothing is missed
      root.dataset.live = "retrying";
      startPolling();
    };
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function tick() {
    if (!countdown || state !== "open") return;
    var left = Math.max(0, Math.floor((expiresAt - Date.now()) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    countdown.textContent = (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s);
    if (left === 0) { apply("unpaid"); poll(); }
  }

  function copy(button) {
    var target = document.getElementById(button.dataset.copy);
    if (!target) return;
    var text = target.value;
    var label = button.textContent;
    function done(message) {
      button.textContent = message;
      live.textContent = message;
      setTimeout(function () { button.textContent = label; }, 1500);
    }
    function fallback() {
      target.focus();
      target.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok ? data.msgCopied : data.msgCopyFailed);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(data.msgCopied); }, fallback);
    } else {
      fallback();
    }
  }

  var logo = document.querySelector(".logo");
  if (logo) {
    var hideLogo = function () { logo.hidden = true; };
    if (logo.complete && logo.naturalWidth === 0) hideLogo();
    else logo.addEventListener("error", hideLogo);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-copy]"), function (button) {
    button.addEventListener("click", function () { copy(button); });
  });

  if (state === "open") {
    tick();
    setInterval(tick, 1000);
    listen();
  } else if (state === "paid" && data.successUrl) {
    setTimeout(function () { window.location.assign(data.successUrl); }, REDIRECT_MS * 2);
  }
})();
