// A line chart drawn by hand in SVG: one polyline per series over a shared time axis.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 180;
const PAD = { left: 44, right: 8, top: 10, bottom: 18 };

/**
 * @param {string} name
 * @param {Record<string, string | number>} attributes
 * @returns {SVGElement}
 */
function el(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  return node;
}

/**
 * Draws the series into `container`, replacing what was there.
 *
 * @param {HTMLElement} container
 * @param {{ name: string, points: number[] }[]} series equally spaced samples, oldest first
 * @param {number} capacity how many samples the x axis holds
 */
export function drawChart(container, series, capacity) {
  // Drawn at the container's width in pixels, so text is never stretched.
  const WIDTH = Math.max(300, container.clientWidth || 600);
  const max = Math.max(1, ...series.flatMap((s) => s.points));
  const top = niceCeil(max);
  const w = WIDTH - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const svg = el("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: "img",
  });
  svg.setAttribute("aria-label", "Message and connection rates over time");
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + h * (1 - f);
    svg.append(el("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }));
    const label = el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" });
    label.textContent = formatRate(top * f);
    svg.append(label);
  }
  for (const s of series) {
    const offset = capacity - s.points.length;
    const coords = s.points.map((v, i) => {
      const x = PAD.left + (w * (offset + i)) / Math.max(1, capacity - 1);
      const y = PAD.top + h * (1 - v / top);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = el("polyline", { class: s.name, points: coords.join(" ") });
    line.setAttribute("data-series", s.name);
    svg.append(line);
  }
  container.replaceChildren(svg);
}

/**
 * @param {number} n
 * @returns {number} 1, 2 or 5 times a power of ten, at least n
 */
function niceCeil(n) {
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

/**
 * @param {number} n a rate
 * @returns {string} short text
 */
export function formatRate(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  if (n >= 10 || n === 0) return String(Math.round(n));
  return n.toFixed(1);
}
