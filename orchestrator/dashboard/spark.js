// A sparkline: the last values of a series as an SVG polyline, scaled to its own range (or 0..max).
const NS = 'http://www.w3.org/2000/svg';

export function sparkline(label, values, { max } = {}) {
  const wrap = document.createElement('span');
  wrap.className = 'spark';
  wrap.dataset.points = String(values.length);
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 90 22');
  const line = document.createElementNS(NS, 'polyline');
  const finite = values.filter((v) => Number.isFinite(v));
  const top = max ?? Math.max(1, ...finite);
  const step = values.length > 1 ? 90 / (values.length - 1) : 0;
  line.setAttribute('points', values.map((v, i) => `${(i * step).toFixed(1)},${(21 - (Number.isFinite(v) ? v / top : 0) * 20).toFixed(1)}`).join(' '));
  svg.append(line);
  const last = finite.at(-1);
  const caption = document.createElement('span');
  caption.textContent = `${label} ${last === undefined ? '-' : Number.isInteger(last) ? last : last.toFixed(1)}`;
  wrap.append(svg, caption);
  return wrap;
}
