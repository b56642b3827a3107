// Small SVG charts, no library: stacked bars over time, a line with gaps, horizontal bars.
// Everything is built with createElementNS and textContent (never innerHTML): labels come from the
// API. Colours are SVG presentation attributes (fill=, stroke=), which a style-src 'self' policy
// allows, unlike style="" attributes. Every chart is role="img" with a <title> that says what it
// shows in words (totals included), and every bar segment has its own <title>: screen readers and
// a mouse hover get the numbers.
//
//   stackedBars({title, columns: [{label, parts: {key: n}}], keys, colors, width})   one bar per column
//   lineChart({title, points: [{label, value | null}], color, unit, width})          null: no sample, a gap
//   horizontalBars({title, items: [{label, value, color}], width})                    one bar per item
//   legend(keys, colors)                                                              an HTML <ul>
//
// `width` is the width the chart will be shown at, in CSS pixels (the caller measures its container):
// the viewBox is then 1:1, so text keeps its size from a phone to a wide screen.

const SVG = "http://www.w3.org/2000/svg";
const DEFAULT_WIDTH = 480;
const MIN_WIDTH = 240;
const HEIGHT = 170;
const PAD = {left: 34, right: 8, top: 8, bottom: 22};
const FONT = 11;
const AXIS = "#5d6675";
const GRID = "#dde1e7";

// A fixed palette, in the order keys are given (colour-blind friendly, Okabe-Ito).
export const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];

function node(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(key, String(value));
  }
  if (text !== undefined) element.textContent = String(text);
  return element;
}

function frame(title, width, height = HEIGHT) {
  const svg = node("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
                           preserveAspectRatio: "xMidYMid meet"});
  svg.appendChild(node("title", {}, title));
  return svg;
}

// A round number at or above `value` for the axis top (1, 2, 5 x 10^n).
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function yAxis(svg, width, top, unit = "") {
  const bottom = HEIGHT - PAD.bottom;
  for (const [value, y] of [[top, PAD.top], [top / 2, (PAD.top + bottom) / 2], [0, bottom]]) {
    svg.appendChild(node("line", {x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, stroke: GRID, "stroke-width": 1}));
    svg.appendChild(node("text", {x: PAD.left - 4, y: y + FONT / 3, "text-anchor": "end", "font-size": FONT, fill: AXIS},
                         `${formatNumber(value)}${unit}`));
  }
}

// Labels under the first, middle and last column (all of them would overlap at 96 columns).
function xLabels(svg, width, labels, columnWidth) {
  const picks = labels.length > 2 ? [0, Math.floor(labels.length / 2), labels.length - 1] : labels.map((_, i) => i);
  for (const index of picks) {
    const x = PAD.left + columnWidth * (index + 0.5);
    const anchor = index === 0 ? "start" : index === labels.length - 1 ? "end" : "middle";
    svg.appendChild(node("text", {x: anchor === "start" ? PAD.left : anchor === "end" ? width - PAD.right : x,
                                  y: HEIGHT - 6, "text-anchor": anchor, "font-size": FONT, fill: AXIS}, labels[index]));
  }
}

export function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  if (Math.abs(value) >= 1000) return `${Math.round(value / 100) / 10}k`;
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 10) / 10);
}

function widthOf(width) {
  return Math.max(MIN_WIDTH, Math.round(width || DEFAULT_WIDTH));
}

export function stackedBars({title, columns, keys, colors = PALETTE, width: shown}) {
  const width = widthOf(shown);
  const svg = frame(title, width);
  const totals = columns.map((column) => keys.reduce((sum, key) => sum + (column.parts[key] || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  yAxis(svg, width, top);
  const plotWidth = width - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const columnWidth = plotWidth / Math.max(1, columns.length);
  const gap = columnWidth > 4 ? 1 : 0;
  columns.forEach((column, index) => {
    if (!totals[index]) return;
    const group = node("g", {class: "column", "data-total": totals[index]});
    let y = HEIGHT - PAD.bottom;
    keys.forEach((key, keyIndex) => {
      const value = column.parts[key] || 0;
      if (!value) return;
      const height = (value / top) * plotHeight;
      y -= height;
      const rect = node("rect", {x: PAD.left + columnWidth * index + gap / 2, y, width: Math.max(0.5, columnWidth - gap),
                                 height, fill: colors[keyIndex % colors.length], class: "bar", "data-key": key,
                                 "data-count": value});
      rect.appendChild(node("title", {}, `${column.label}: ${key} ${value}`));
      group.appendChild(rect);
    });
    svg.appendChild(group);
  });
  xLabels(svg, width, columns.map((column) => column.label), columnWidth);
  return svg;
}

export function lineChart({title, points, color = PALETTE[0], unit = "", width: shown}) {
  const width = widthOf(shown);
  const svg = frame(title, width);
  const values = points.map((point) => point.value).filter((value) => value !== null && value !== undefined);
  const top = niceMax(Math.max(0, ...values));
  yAxis(svg, width, top, unit);
  const plotWidth = width - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const columnWidth = plotWidth / Math.max(1, points.length);
  // One path, broken where a bucket has no sample (a gap, not a drop to zero).
  let path = "";
  let drawing = false;
  points.forEach((point, index) => {
    if (point.value === null || point.value === undefined) { drawing = false; return; }
    const x = PAD.left + columnWidth * (index + 0.5);
    const y = HEIGHT - PAD.bottom - (point.value / top) * plotHeight;
    path += `${drawing ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)} `;
    drawing = true;
    const dot = node("circle", {cx: x, cy: y, r: 2.5, fill: color, class: "point", "data-value": point.value});
    dot.appendChild(node("title", {}, `${point.label}: ${formatNumber(point.value)}${unit}`));
    svg.appendChild(dot);
  });
  if (path) svg.insertBefore(node("path", {d: path.trim(), fill: "none", stroke: color, "stroke-width": 1.5}),
                             svg.querySelector("circle"));
  xLabels(svg, width, points.map((point) => point.label), columnWidth);
  return svg;
}

export function horizontalBars({title, items, width: shown}) {
  const width = widthOf(shown);
  const rowHeight = 22;
  const height = Math.max(1, items.length) * rowHeight + 8;
  const svg = frame(title, width, height);
  const labelWidth = Math.min(150, Math.round(width * 0.4));
  const top = Math.max(1, ...items.map((item) => item.value));
  items.forEach((item, index) => {
    const y = 4 + index * rowHeight;
    const barWidth = Math.max(1, (item.value / top) * (width - labelWidth - 50));
    svg.appendChild(node("text", {x: labelWidth - 6, y: y + 14, "text-anchor": "end", "font-size": 12, fill: "#1d2430"},
                         item.label));
    const rect = node("rect", {x: labelWidth, y: y + 3, width: barWidth, height: rowHeight - 6, fill: item.color || PALETTE[0],
                               class: "bar", "data-key": item.label, "data-count": item.value});
    rect.appendChild(node("title", {}, `${item.label}: ${item.value}`));
    svg.appendChild(rect);
    svg.appendChild(node("text", {x: labelWidth + barWidth + 6, y: y + 14, "font-size": 12, fill: AXIS}, item.value));
  });
  return svg;
}

export function legend(keys, colors = PALETTE) {
  const list = document.createElement("ul");
  list.className = "chart-legend";
  keys.forEach((key, index) => {
    const item = document.createElement("li");
    const swatch = document.createElementNS(SVG, "svg");
    swatch.setAttribute("viewBox", "0 0 10 10");
    swatch.setAttribute("class", "swatch");
    swatch.setAttribute("aria-hidden", "true");
    swatch.appendChild(node("rect", {width: 10, height: 10, fill: colors[index % colors.length]}));
    item.append(swatch, document.createTextNode(key));
    list.appendChild(item);
  });
  return list;
}
