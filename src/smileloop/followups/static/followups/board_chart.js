/* The follow-up team board: a stacked bar per staff member (done or goal reached / open / overdue), read from
   the json_script block #fu-board-data and drawn with the vendored ECharts; redrawn after an htmx swap. */
(function () {
  "use strict";
  var chart = null;

  function draw() {
    var el = document.getElementById("fu-board-chart");
    var source = document.getElementById("fu-board-data");
    if (!el || !source || !window.echarts) { return; }
    if (chart && chart.getDom() !== el) { chart.dispose(); chart = null; }
    var data = JSON.parse(source.textContent);
    chart = chart || window.echarts.init(el);
    chart.setOption({
      grid: { left: 90, right: 24, top: 32, bottom: 24 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { data: [data.labels.finished, data.labels.open, data.labels.overdue], top: 0 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: data.staff, inverse: true },
      series: [
        { name: data.labels.finished, type: "bar", stack: "t", itemStyle: { color: "#0d7c74" }, data: data.finished },
        { name: data.labels.open, type: "bar", stack: "t", itemStyle: { color: "#cfe8e5" }, data: data.open },
        { name: data.labels.overdue, type: "bar", stack: "t", itemStyle: { color: "#c0392b" }, data: data.overdue }
      ]
    }, true);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () { if (chart) { chart.resize(); } });
})();
