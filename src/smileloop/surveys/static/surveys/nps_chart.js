/* The NPS monthly trend on the satisfaction page: reads the json_script block #nps-trend-data, draws with the
   vendored ECharts; redrawn after an htmx swap of the results. No inline script anywhere. */
(function () {
  "use strict";
  var chart = null;

  function draw() {
    var el = document.getElementById("nps-trend");
    var source = document.getElementById("nps-trend-data");
    if (!el || !source || !window.echarts) { return; }
    if (chart && chart.getDom() !== el) { chart.dispose(); chart = null; }
    var data = JSON.parse(source.textContent);
    chart = chart || window.echarts.init(el);
    chart.setOption({
      grid: { left: 44, right: 44, top: 36, bottom: 28 },
      tooltip: { trigger: "axis" },
      legend: { data: [data.labels.nps, data.labels.responses], top: 0 },
      xAxis: { type: "category", data: data.months },
      yAxis: [
        { type: "value", min: -100, max: 100, name: data.labels.nps },
        { type: "value", minInterval: 1, name: data.labels.responses, splitLine: { show: false } }
      ],
      series: [
        { name: data.labels.responses, type: "bar", yAxisIndex: 1, itemStyle: { color: "#cfe8e5" },
          data: data.responses },
        { name: data.labels.nps, type: "line", connectNulls: false, itemStyle: { color: "#0d7c74" },
          data: data.nps.map(function (v) { return v === null ? null : parseFloat(v); }) }
      ]
    }, true);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () { if (chart) { chart.resize(); } });
})();
