// Live charts of one VM with uPlot (served by the daemon from node_modules/uplot). Each chart's element
// carries data-points, the number of samples drawn, so a test (or a curious user) can see it grow.
/* global uPlot */

const COLORS = ['#0969da', '#cf222e', '#9a6700', '#1a7f37'];

export function lineChart(el, title, seriesLabels, { yMax } = {}) {
  const width = Math.max(300, el.clientWidth || 360);
  const opts = {
    title,
    width,
    height: 180,
    scales: { x: { time: true }, y: yMax === undefined ? { auto: true } : { range: [0, yMax] } },
    series: [{}, ...seriesLabels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
    axes: [{}, { size: 44 }],
    legend: { show: true },
  };
  const empty = [[], ...seriesLabels.map(() => [])];
  const plot = new uPlot(opts, empty, el);
  el.dataset.points = '0';
  return {
    set(columns) {
      plot.setData(columns.map((c) => [...c]));
      el.dataset.points = String(columns[0].length);
    },
    destroy() {
      plot.destroy();
    },
  };
}
