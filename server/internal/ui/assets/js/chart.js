// Line charts with uPlot (vendored, loaded as the global uPlot): one line per
// series, with uPlot's legend (click a name to hide its line).

// Tableau 10: distinguishable, and readable on white.
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#edc948', '#76b7b2', '#ff9da7', '#9c755f', '#79706e'];

export const color = (i) => PALETTE[i % PALETTE.length];

// series: [{label, points: [[epochMs, value], ...]}]. uPlot wants one shared
// x array, so the union of the timestamps is the x axis and gaps are nulls.
function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col = new Array(xs.length).fill(null);
    for (const [x, v] of s.points) col[index.get(x)] = v;
    return col;
  });
  return [xs.map((x) => x / 1000), ...ys];
}

export function lineChart(container, series, { height = 320, label = '' } = {}) {
  let plot = null;
  let labels = '';
  const width = () => Math.max(320, container.clientWidth || 800);
  const build = (list) => {
    if (plot) plot.destroy();
    labels = list.map((s) => s.label).join('\n');
    plot = new window.uPlot({
      width: width(), height,
      scales: { x: { time: true } },
      series: [{ label: 'Time' }, ...list.map((s, i) => ({ label: s.label, stroke: color(i), width: 1.5, spanGaps: false }))],
      axes: [{}, { label, size: 60 }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    }, align(list), container);
  };
  build(series);
  const resize = new ResizeObserver(() => plot && plot.setSize({ width: width(), height }));
  resize.observe(container);
  return {
    update(list) {
      if (list.map((s) => s.label).join('\n') === labels) plot.setData(align(list));
      else build(list);
    },
    destroy() {
      resize.disconnect();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}
