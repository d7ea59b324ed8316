/* Follow-up inbox: "Copy script" buttons copy the filled script of their task to the clipboard.
   Delegated on document so rows swapped in by htmx work too. No inline script anywhere. */
(function () {
  "use strict";

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) { return; }
    var text = source.textContent.trim();
    var done = function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied-label") || label;
      window.setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  });
})();
