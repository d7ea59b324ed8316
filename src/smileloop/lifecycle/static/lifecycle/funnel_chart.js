/* The lifecycle funnel: customers who reached at least each progress stage, read from the json_script block
   #lc-funnel-data and drawn with the vendored ECharts; redrawn after an htmx swap. No inline script. */
(function () {
  "use strict";
  var chart = null;

  function draw() {
    var el = document.getElementById("lc-funnel-chart");
    var source = document.getElementById("lc-funnel-data");
    if (!el || !source || !window.echarts) { return; }
    if (chart && chart.getDom() !== el) { chart.dispose(); chart = null; }
    var data = JSON.parse(source.textContent);
    var top = data.steps.length ? data.steps[0].value : 0;
    chart = chart || window.echarts.init(el);
    chart.setOption({
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          var share = top ? " (" + (100 * p.value / top).toFixed(1) + "%)" : "";
          return p.name + ": " + p.value + " " + data.labels.customers + share;
        }
      },
      color: ["#fbe3a6", "#f7c99b", "#b9d3f5", "#a9dcd6", "#7cc7a0", "#3fa36b", "#1a7f37"],
      series: [{
        name: data.labels.title, type: "funnel", sort: "none", left: "8%", width: "84%", top: 10, bottom: 10,
        min: 0, max: top || 1, gap: 2, minSize: "8%",
        label: { show: true, position: "inside", formatter: "{b}  {c}", color: "#1f2937" },
        data: data.steps
      }]
    }, true);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () { if (chart) { chart.resize(); } });
})();
