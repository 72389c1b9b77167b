// Analytics charts: each <canvas data-chart="ID"> draws the rows of the JSON script #ID (the same
// rows as the table beside it) as bars. data-label / data-value name the fields (default: period /
// referrals). Chart.js is installed by `liaison assets`, never from a CDN.
(function () {
  function draw() {
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const rows = JSON.parse(source.textContent);
      const label = canvas.dataset.label || "period";
      const value = canvas.dataset.value || "referrals";
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: rows.map(function (r) { return r[label]; }),
          datasets: [{ label: canvas.getAttribute("aria-label").split(";")[0], data: rows.map(function (r) { return Number(r[value]) || 0; }) }],
        },
        options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } } },
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
