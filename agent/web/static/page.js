// mlwarden status page: refreshes the page's live parts in place every few seconds.
// No framework and no build step. Without JavaScript the page works the same, refreshed by
// hand. Refreshing pauses while the tab is hidden, while focus is on a control and once
// the silence form has been typed into, so nothing the user does is thrown away.
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh") || "0", 10) * 1000;
  var url = document.body.getAttribute("data-refresh-url") || "/";
  var box = document.getElementById("autorefresh");
  var label = document.getElementById("autorefresh-label");
  var state = document.getElementById("refresh-state");
  var KEY = "mlwarden.autorefresh";
  var typed = false;
  if (!every || !box || !label || !state) { return; }
  label.hidden = false;
  try { if (window.localStorage.getItem(KEY) === "off") { box.checked = false; } } catch (e) { /* storage off */ }
  box.addEventListener("change", function () {
    try { window.localStorage.setItem(KEY, box.checked ? "on" : "off"); } catch (e) { /* storage off */ }
  });
  var form = document.getElementById("silence-form");
  if (form) { form.addEventListener("input", function () { typed = true; }); }

  function busy() {
    var el = document.activeElement;
    return typed || (el && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(el.tagName));
  }

  function refresh() {
    if (!box.checked || document.hidden || busy()) { return; }
    window.fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) { el.replaceWith(document.importNode(next, true)); }
        });
        document.title = fresh.title;
        document.body.setAttribute("data-refreshed", String(Date.now()));
        state.textContent = "";
      })
      .catch(function (err) {
        state.textContent = "Refresh failed at " + new Date().toLocaleTimeString() +
          " (" + err.message + "); trying again.";
      });
  }
  window.setInterval(refresh, every);
})();
