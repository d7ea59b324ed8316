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

/* A table wider than its box scrolls inside it (.table-wrap). A keyboard user can scroll it only once the box can take
   focus, and a screen reader then names it: every such box that overflows gets tabindex=0 and is a region named after
   its card's heading (or the page's), on load, after every htmx swap and when the window is resized. */
(function () {
  "use strict";

  function heading(wrap) {
    var card = wrap.closest("section, .card");
    var found = (card && card.querySelector("h2, h3, caption, header")) || document.querySelector("h1");
    var name = found ? found.textContent.replace(/\s+/g, " ").trim() : "";
    var same = 0;  // landmarks tell apart by their names: "Possible duplicates 2" for a second box of one name
    document.querySelectorAll(".table-wrap[data-scroll-focus=named]").forEach(function (other) {
      if (other !== wrap && other.dataset.scrollName === name) { same += 1; }
    });
    wrap.dataset.scrollName = name;
    return same ? name + " " + (same + 1) : name;
  }

  function markScrollable() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      if (wrap.dataset.scrollFocus === undefined && wrap.hasAttribute("tabindex")) { return; }  // marked in its template
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        wrap.tabIndex = 0;
        wrap.setAttribute("role", "region");
        if (wrap.dataset.scrollFocus === undefined) {
          wrap.dataset.scrollFocus = wrap.hasAttribute("aria-label") ? "" : "named";
          if (wrap.dataset.scrollFocus === "named") { wrap.setAttribute("aria-label", heading(wrap)); }
        }
      } else if (wrap.dataset.scrollFocus !== undefined) {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        if (wrap.dataset.scrollFocus === "named") { wrap.removeAttribute("aria-label"); }
        delete wrap.dataset.scrollFocus;
        delete wrap.dataset.scrollName;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", markScrollable);
  document.addEventListener("htmx:afterSettle", markScrollable);
  window.addEventListener("resize", markScrollable);
})();

/* htmx swaps the part of the page that held the focus (adding or removing a tag, saving or refusing a card's form): the
   focused control is replaced and the focus falls back to the top of the page, where a keyboard or screen-reader user
   has to start over. Put it back: on the same control in the new content (its id, or the same kind of control of the
   same form), else on the first field marked invalid, else on the swapped region itself. */
(function () {
  "use strict";

  var remembered = null;

  function signature(el) {
    var form = el.form || el.closest("form");
    return [el.tagName, el.type || "", el.name || "", (el.tagName === "BUTTON" || el.tagName === "A") ? el.textContent.trim() : "",
            form ? form.getAttribute("action") || "" : ""].join("|");
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    remembered = null;
    if (target && target.id && active && active !== document.body && target.contains(active)) {
      remembered = {region: target.id, id: active.id, signature: signature(active)};
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    var memo = remembered;
    remembered = null;
    var active = document.activeElement;
    if (!memo || (active && active !== document.body && document.contains(active))) { return; }
    var region = document.getElementById(memo.region);
    if (!region) { return; }
    var next = region.querySelector("[aria-invalid=true], .has-error input, .has-error select, .has-error textarea");
    if (!next && memo.id) { next = document.getElementById(memo.id); }
    if (!next) {
      next = Array.prototype.find.call(region.querySelectorAll("button, input, select, textarea, a[href]"),
                                       function (el) { return signature(el) === memo.signature; });
    }
    if (!next) {
      if (!region.hasAttribute("tabindex")) { region.setAttribute("tabindex", "-1"); }
      next = region;
    }
    next.focus();
  });
})();

/* Behaviour that templates ask for by attribute, so that no page needs an inline handler (the Content-Security-Policy
   allows no inline script, onclick="…" included): data-history-back goes back a page (the expired-form and busy
   pages), data-submit-on-change submits its form when its value changes (the new playbook's trigger choice). */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var back = event.target.closest && event.target.closest("[data-history-back]");
    if (back) {
      event.preventDefault();
      window.history.back();
    }
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.matches && field.matches("[data-submit-on-change]") && field.form) { field.form.requestSubmit(); }
  });
})();

/* htmx keeps snapshots of the pages it pushed into the history (patient lists, searches) in sessionStorage, where
   they outlive a logout on a shared front-desk PC. Keep none: Back and Forward to such a page load it from the
   server, which answers only the one logged in (and sends every page with Cache-Control: no-store). After htmx has
   read the layout's htmx-config, on the same DOMContentLoaded. */
(function () {
  "use strict";

  try { window.sessionStorage.removeItem("htmx-history-cache"); } catch (ignored) { /* storage refused: nothing kept */ }
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.htmx) { return; }
    window.htmx.config.historyCacheSize = 0;
    window.htmx.config.refreshOnHistoryMiss = true;
  });
})();

/* On a phone (below 760 px, static/css/staff.css) the main menu collapses behind its "Menu" button, which says
   whether it is open (aria-expanded); Escape closes it and puts the focus back on the button. Without this script the
   button stays hidden and the menu open (the html element gets .nav-collapsible only here). */
(function () {
  "use strict";

  var button = document.querySelector("[data-nav-toggle]");
  var nav = button && document.getElementById(button.getAttribute("aria-controls"));
  if (!nav) { return; }
  document.documentElement.classList.add("nav-collapsible");

  function show(open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    nav.classList.toggle("is-open", open);
  }

  button.addEventListener("click", function () { show(button.getAttribute("aria-expanded") !== "true"); });
  document.addEventListener("keydown", function (event) {
    var inside = document.activeElement === button || nav.contains(document.activeElement);
    if (event.key === "Escape" && inside && button.getAttribute("aria-expanded") === "true") {
      show(false);
      button.focus();
    }
  });
})();
