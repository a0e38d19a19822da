// Small SVG charts drawn from our own data (no external library): grouped bars and lines.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1a73e8", "#1e9e5a", "#d98b0b", "#d93636", "#7b4fd6", "#0097a7", "#8d6e63"];

  function svg(tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function frame(width, height) {
    return svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  }

  // A maximum that splits into 4 round steps (4, 8, 20, 40, 100, 200 …), so the axis labels are whole numbers.
  function niceMax(v) {
    const raw = Math.max(1, v) / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw && Number.isInteger(s)) || Math.ceil(raw);
    return step * 4;
  }

  function axes(root, w, h, pad, max) {
    for (let i = 0; i <= 4; i++) {
      const y = h - pad.b - ((h - pad.t - pad.b) * i) / 4;
      root.appendChild(svg("line", { x1: pad.l, x2: w - pad.r, y1: y, y2: y, stroke: "#e3e7ee" }));
      root.appendChild(svg("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end" }, String(Math.round((max * i) / 4))));
    }
  }

  // series: [{name, values:[...]}], labels: x labels
  function lines(labels, series, opts) {
    const w = 560, h = 240, pad = { l: 40, r: 24, t: 12, b: 34 };
    const root = frame(w, h);
    const max = niceMax(Math.max(1, ...series.flatMap((s) => s.values)));
    axes(root, w, h, pad, max);
    const step = labels.length > 1 ? (w - pad.l - pad.r) / (labels.length - 1) : 0;
    const x = (i) => pad.l + (labels.length > 1 ? i * step : (w - pad.l - pad.r) / 2);
    const y = (v) => h - pad.b - ((h - pad.t - pad.b) * v) / max;
    const every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach((label, i) => {
      if (i % every === 0) root.appendChild(svg("text", { x: x(i), y: h - 12, "text-anchor": "middle" }, label));
    });
    series.forEach((s, k) => {
      const color = COLORS[k % COLORS.length];
      const pts = s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      root.appendChild(svg("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2 }));
      s.values.forEach((v, i) => {
        const dot = svg("circle", { cx: x(i), cy: y(v), r: 3, fill: color });
        dot.appendChild(svg("title", {}, `${s.name} ${labels[i]}：${v}`));
        root.appendChild(dot);
      });
    });
    return withLegend(root, series.map((s) => s.name), opts);
  }

  // items: [{label, count}]
  function bars(items, opts) {
    const w = 560, h = 240, pad = { l: 40, r: 12, t: 12, b: 40 };
    const root = frame(w, h);
    const max = niceMax(Math.max(1, ...items.map((i) => i.count)));
    axes(root, w, h, pad, max);
    const slot = (w - pad.l - pad.r) / Math.max(1, items.length);
    items.forEach((item, i) => {
      const bh = ((h - pad.t - pad.b) * item.count) / max;
      const x = pad.l + i * slot + slot * 0.2;
      const rect = svg("rect", { x, y: h - pad.b - bh, width: slot * 0.6, height: bh, rx: 3, fill: COLORS[i % COLORS.length] });
      rect.appendChild(svg("title", {}, `${item.label}：${item.count}`));
      root.appendChild(rect);
      root.appendChild(svg("text", { x: x + slot * 0.3, y: h - pad.b - bh - 4, "text-anchor": "middle" }, String(item.count)));
      root.appendChild(svg("text", { x: x + slot * 0.3, y: h - 20, "text-anchor": "middle" }, item.label.slice(0, 8)));
    });
    if (!items.length) root.appendChild(svg("text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "暂无数据"));
    return withLegend(root, [], opts);
  }

  function withLegend(root, names, opts) {
    const box = document.createElement("div");
    if (opts && opts.title) { const t = document.createElement("h3"); t.textContent = opts.title; box.appendChild(t); }
    box.appendChild(root);
    if (names.length) {
      const legend = document.createElement("div");
      legend.className = "legend";
      names.forEach((n, k) => {
        const s = document.createElement("span");
        s.textContent = n;
        s.setAttribute("data-color", COLORS[k % COLORS.length]);
        const sw = svg("svg", { width: 10, height: 10 });
        sw.appendChild(svg("rect", { width: 10, height: 10, rx: 2, fill: COLORS[k % COLORS.length] }));
        legend.appendChild(sw); legend.appendChild(s);
      });
      box.appendChild(legend);
    }
    return box;
  }

  window.HuikeCharts = { lines, bars };
})();
