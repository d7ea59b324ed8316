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

/* A live filter form (hx-push-url: the results follow the address) shows what the address says after Back or Forward.
   htmx restores the page from its history snapshot, which keeps each field's value as the page was first served, not
   what was typed: the results of "zs" came back under an empty search box. Forms marked data-url-fields take their
   fields from the address once htmx has restored the page; a form marked data-filters-from-url (the export) sends its
   data-from-url fields as the address has them, i.e. the filter of the list on screen. */
(function () {
  "use strict";

  function fromUrl(params, field) {
    var value = params.has(field.name) ? params.get(field.name) : "";
    if (field.type === "checkbox" || field.type === "radio") {
      field.checked = params.getAll(field.name).indexOf(field.value) !== -1;
    } else if (field.tagName === "SELECT") {
      var known = Array.prototype.some.call(field.options, function (option) { return option.value === value; });
      field.value = known ? value : "";  // a value the select does not offer was not applied: "All …"
    } else {
      field.value = value;
    }
  }

  function fieldsFromUrl() {
    var params = new URLSearchParams(window.location.search);
    document.querySelectorAll("form[data-url-fields]").forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.name && ["submit", "button", "reset", "hidden"].indexOf(field.type) === -1) { fromUrl(params, field); }
      });
    });
  }

  document.addEventListener("htmx:historyRestore", fieldsFromUrl);
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-filters-from-url]")) { return; }
    var params = new URLSearchParams(window.location.search);
    form.querySelectorAll("input[data-from-url]").forEach(function (input) {
      input.value = params.has(input.name) ? params.get(input.name) : "";
    });
  });
})();
