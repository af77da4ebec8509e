// The analytics page's charts. The server prints each chart's data as JSON in the
// canvas's `data-chart` attribute (escaped by the template, so no inline script is
// needed under the CSP); this module hands it to chart.js, loaded before it from
// /assets/vendor. Every chart has a table with the same figures beside it, so nothing is
// only in a picture.

/* global Chart */

const palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

function draw(canvas) {
  let spec;
  try {
    spec = JSON.parse(canvas.dataset.chart);
  } catch (e) {
    canvas.replaceWith(Object.assign(document.createElement("p"), {
      className: "error",
      textContent: "This chart's data could not be read; the table below has the figures.",
    }));
    return;
  }
  const percent = spec.unit === "percent";
  const datasets = spec.datasets.map((d, i) => ({
    label: d.label,
    data: d.data,
    borderColor: palette[i % palette.length],
    backgroundColor: spec.type === "line" ? palette[i % palette.length] : palette[i % palette.length] + "cc",
    borderWidth: spec.type === "line" ? 2 : 0,
    pointRadius: spec.type === "line" && d.data.length > 60 ? 0 : 2,
    tension: 0,
    fill: false,
  }));
  // eslint-disable-next-line no-new
  new Chart(canvas, {
    type: spec.type,
    data: { labels: spec.labels, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      indexAxis: spec.horizontal ? "y" : "x",
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { display: datasets.length > 1 },
        tooltip: {
          callbacks: percent
            ? { label: (c) => `${c.dataset.label}: ${(c.parsed.y * 100).toFixed(1)}%` }
            : {},
        },
      },
      scales: {
        x: {
          title: { display: Boolean(spec.x), text: spec.x || "" },
          ticks: { maxRotation: 0, autoSkip: true, ...(spec.horizontal ? { precision: 0 } : {}) },
        },
        y: {
          beginAtZero: true,
          title: { display: Boolean(spec.y), text: spec.y || "" },
          ...(percent ? { max: 1, ticks: { callback: (v) => `${Math.round(v * 100)}%` } } : {}),
        },
      },
    },
  });
  canvas.dataset.drawn = "true";
}

function drawAll() {
  if (typeof Chart !== "function") {
    for (const c of document.querySelectorAll("canvas[data-chart]")) {
      c.replaceWith(Object.assign(document.createElement("p"), {
        className: "notice",
        textContent: "Charts could not load; the tables have the figures.",
      }));
    }
    return;
  }
  document.querySelectorAll("canvas[data-chart]").forEach(draw);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", drawAll);
} else {
  drawAll();
}
