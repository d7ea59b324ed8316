/* When an htmx request fails (server error, expired form, no network), say so: htmx swaps nothing for a 4xx/5xx
   (the layout's responseHandling) and a click would otherwise seem to do nothing. The words come translated from
   the layout (#request-error's data attributes); validation answers (422) are swapped in by htmx as usual. */
(function () {
  "use strict";

  function banner() { return document.getElementById("request-error"); }

  function show(kind) {
    var box = banner();
    if (!box) { return; }
    box.querySelector("[data-text]").textContent = box.dataset[kind] || box.dataset.server;
    box.dataset.kind = kind;
    box.hidden = false;
    box.focus();
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    var body = (xhr && xhr.responseText) || "";
    if (status === 403 && body.indexOf('data-error="form-expired"') !== -1) { show("expired"); }
    else if (status === 403) { show("forbidden"); }
    else if (status === 404) { show("notfound"); }
    else if (status === 503 && body.indexOf('data-testid="database-busy"') !== -1) { show("busy"); }
    else if (status >= 500) { show("server"); }
    else { show("refused"); }
  });
  document.addEventListener("htmx:sendError", function () { show("network"); });
  document.addEventListener("htmx:timeout", function () { show("network"); });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = banner();
    if (box && !box.hidden && box.dataset.kind === "network") { box.hidden = true; }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-dismiss-error]")) { banner().hidden = true; }
  });
})();
