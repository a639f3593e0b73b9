// EmbeddingExplorer front end: plain ESM, no imports (works offline, no CDN).
// Draws model.points ({x, y, text, label, nn: [[index, cosine], ...]}) as an SVG scatter
// plot. Hover shows a point's text; click lists its nearest neighbours (precomputed in
// Python from the full vectors) and sends the index back as `selected`.

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "eliza-explorer";
  const title = document.createElement("div");
  title.className = "eliza-explorer-title";
  const wrap = document.createElement("div");
  wrap.className = "eliza-explorer-plot";
  const tip = document.createElement("div");
  tip.className = "eliza-explorer-tooltip";
  tip.style.display = "none";
  const side = document.createElement("div");
  side.className = "eliza-explorer-neighbours";
  const body = document.createElement("div");
  body.className = "eliza-explorer-body";
  body.append(wrap, side);
  root.append(title, body);
  el.appendChild(root);

  let circles = [];

  function colourOf(points) {
    const labels = [...new Set(points.map((p) => p.label).filter((l) => l !== ""))];
    return (p) => (p.label === "" ? PALETTE[0] : PALETTE[labels.indexOf(p.label) % PALETTE.length]);
  }

  function showNeighbours() {
    const points = model.get("points");
    const i = model.get("selected");
    side.replaceChildren();
    circles.forEach((c, j) => c.classList.toggle("selected", j === i));
    circles.forEach((c) => c.classList.remove("neighbour"));
    if (!(i >= 0 && i < points.length)) {
      const hint = document.createElement("div");
      hint.className = "eliza-explorer-hint";
      hint.textContent = "Click a point to list its nearest neighbours.";
      side.appendChild(hint);
      return;
    }
    const head = document.createElement("div");
    head.className = "eliza-explorer-selected";
    head.textContent = points[i].text;
    const sub = document.createElement("div");
    sub.className = "eliza-explorer-hint";
    sub.textContent = "nearest neighbours (cosine, full vectors):";
    const list = document.createElement("ol");
    for (const [j, score] of points[i].nn) {
      const li = document.createElement("li");
      li.className = "eliza-explorer-neighbour";
      const s = document.createElement("span");
      s.className = "eliza-explorer-score";
      s.textContent = Number(score).toFixed(3);
      li.append(s, document.createTextNode(" " + points[j].text));
      li.addEventListener("click", () => select(j));
      list.appendChild(li);
      if (circles[j]) circles[j].classList.add("neighbour");
    }
    side.append(head, sub, list);
  }

  function select(i) {
    model.set("selected", i);
    model.save_changes();
    showNeighbours(); // at once, without waiting for the kernel's echo
  }

  function draw() {
    const points = model.get("points") || [];
    const w = model.get("width"), h = model.get("height"), pad = 28;
    const ex = model.get("explained") || [0, 0];
    title.textContent = model.get("title");
    wrap.replaceChildren();
    const plot = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "eliza-explorer-svg", role: "img" });
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (v) => (x1 === x0 ? w / 2 : pad + ((v - x0) / (x1 - x0)) * (w - 2 * pad));
    const sy = (v) => (y1 === y0 ? h / 2 : h - pad - ((v - y0) / (y1 - y0)) * (h - 2 * pad));
    plot.appendChild(svg("rect", { x: 0.5, y: 0.5, width: w - 1, height: h - 1, class: "eliza-explorer-frame" }));
    const xl = svg("text", { x: w / 2, y: h - 6, "text-anchor": "middle", class: "eliza-explorer-axis" });
    xl.textContent = `PC1 (${(100 * ex[0]).toFixed(0)}% of variance)`;
    const yl = svg("text", { x: 12, y: h / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${h / 2})`, class: "eliza-explorer-axis" });
    yl.textContent = `PC2 (${(100 * ex[1]).toFixed(0)}%)`;
    plot.append(xl, yl);
    const colour = colourOf(points);
    circles = points.map((p, i) => {
      const c = svg("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 5, fill: colour(p), class: "eliza-explorer-point", "data-index": i });
      c.addEventListener("mouseenter", () => {
        tip.textContent = p.text + (p.label ? ` [${p.label}]` : "");
        tip.style.left = `${sx(p.x) + 10}px`;
        tip.style.top = `${sy(p.y) - 10}px`;
        tip.style.display = "block";
      });
      c.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      c.addEventListener("click", () => select(i));
      plot.appendChild(c);
      return c;
    });
    wrap.append(plot, tip);
    showNeighbours();
  }

  model.on("change:points", draw);
  model.on("change:title", draw);
  model.on("change:selected", showNeighbours);
  draw();
  return () => {
    model.off("change:points", draw);
    model.off("change:title", draw);
    model.off("change:selected", showNeighbours);
  };
}

export default { render };
