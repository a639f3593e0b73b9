// BenchmarkView front end: plain ESM, no imports. Two tables (summary, runs) from
// model.tables; click a header to sort (sort_by / ascending are synced to Python);
// numeric cells carry a bar scaled to the column's largest absolute value.
// A heatmap tab (model.heatmap: configuration x metric, shaded per column, darker = better,
// the mean score's interval as an SVG error bar; model.axes: grid axis x grid axis) and a
// side-by-side tab (model.answers; the two picks pick_a / pick_b are synced to Python, which
// answers with model.verdict).

const SVG = "http://www.w3.org/2000/svg";
const TABS = [["summary", "summary"], ["runs", "runs"], ["heatmap", "heatmap"], ["side", "side by side"]];

const FIXED = { latency_s: 3, ttft_s: 3, p50_latency_s: 3, p95_latency_s: 3, cost_usd: 5, total_cost_usd: 5,
  score: 3, mean_score: 3, error_rate: 2, tokens_per_s: 1, mean_tokens_per_s: 1 };

function fmt(col, v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "✓" : "";
  if (typeof v === "number") {
    if (Number.isInteger(v) && !(col in FIXED)) return String(v);
    return v.toFixed(col in FIXED ? FIXED[col] : 3);
  }
  return String(v);
}

function compare(a, b) {
  const na = a === null || a === undefined, nb = b === null || b === undefined;
  if (na || nb) return na && nb ? 0 : na ? 1 : -1; // empty cells last either way
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

function el_(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// a shade 0 (worst) .. 1 (best) as pale .. dark blue, with readable text (as benchview.py's _bg)
function paint(td, shade) {
  if (shade === null || shade === undefined) return;
  const lo = [239, 246, 255], hi = [30, 64, 175];
  const c = lo.map((l, i) => Math.round(l + (hi[i] - l) * shade));
  td.style.background = `rgb(${c[0]},${c[1]},${c[2]})`;
  td.style.color = shade > 0.55 ? "#fff" : "#111";
  td.dataset.shade = String(shade);
}

function num(key, v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (key.includes("cost")) return v.toFixed(5);
  if (key === "tokens_per_s") return v.toFixed(1);
  return v.toFixed(3);
}

// the mean score (0..1) as a bar, its interval as a whisker
function intervalBar(mean, lo, hi, width = 120) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", 14);
  svg.setAttribute("class", "eliza-bench-ci");
  const x = (v) => (width * Math.max(0, Math.min(1, v))).toFixed(1);
  const add = (tag, attrs) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.appendChild(n);
    return n;
  };
  add("rect", { x: 0, y: 3, width, height: 8, fill: "#e5e7eb" });
  if (typeof mean === "number") add("rect", { x: 0, y: 3, width: x(mean), height: 8, fill: "#60a5fa", class: "mean" });
  if (typeof lo === "number" && typeof hi === "number") {
    add("line", { x1: x(lo), x2: x(hi), y1: 7, y2: 7, stroke: "#111", "stroke-width": 1.5, class: "whisker" });
    add("line", { x1: x(lo), x2: x(lo), y1: 2, y2: 12, stroke: "#111" });
    add("line", { x1: x(hi), x2: x(hi), y1: 2, y2: 12, stroke: "#111" });
  }
  return svg;
}

// labels without the " · " parts every label shares (shown once in the caption instead)
function shorten(labels) {
  const parts = labels.map((l) => l.split(" · "));
  const common = parts.length > 1 ? parts[0].filter((p) => parts.every((ps) => ps.includes(p))) : [];
  const short = parts.map((ps) => ps.filter((p) => !common.includes(p)).join(" · "));
  return short.every((s) => s) ? { short, common } : { short: labels, common: [] };
}

function drawHeatmap(root, h, a) {
  if (!h.rows || !h.rows.length) { root.appendChild(el_("div", "eliza-bench-empty", "no configurations")); return; }
  const { short, common } = shorten(h.rows);
  const table = el_("table", "eliza-bench-heatmap");
  const hr = el_("tr");
  hr.appendChild(el_("th", "", "configuration"));
  for (const m of h.metrics) {
    const th = el_("th", "num", m.label);
    th.dataset.metric = m.key;
    th.title = m.better === "high" ? "higher is better" : "lower is better";
    hr.appendChild(th);
  }
  hr.appendChild(el_("th", "", "mean score · 95% interval"));
  const thead = el_("thead"); thead.appendChild(hr);
  const tbody = el_("tbody");
  const mi = h.metrics.findIndex((m) => m.key === "mean_score");
  h.rows.forEach((config, i) => {
    const tr = el_("tr");
    tr.dataset.config = config;
    const th = el_("th", "eliza-bench-config", short[i]);
    th.title = config + (h.notes[i] ? `\n${h.notes[i]}` : "");
    tr.appendChild(th);
    h.metrics.forEach((m, j) => {
      const v = h.values[i][j];
      const td = el_("td", "eliza-bench-cell num", num(m.key, v));
      td.dataset.metric = m.key;
      paint(td, h.shade[i][j]);
      if (m.key === "mean_score") {
        td.title = typeof h.lo[i] === "number" && typeof h.hi[i] === "number"
          ? `${num(m.key, v)} (95% interval ${num(m.key, h.lo[i])}–${num(m.key, h.hi[i])})`
          : `${num(m.key, v)} (${h.notes[i] || "no interval"})`;
      }
      tr.appendChild(td);
    });
    const bar = el_("td", "eliza-bench-ci-cell");
    bar.appendChild(intervalBar(mi >= 0 ? h.values[i][mi] : null, h.lo[i], h.hi[i]));
    tr.appendChild(bar);
    tbody.appendChild(tr);
  });
  table.append(thead, tbody);
  const scroller = el_("div", "eliza-bench-scroll");
  scroller.appendChild(table);
  const all = common.length ? ` · all: ${common.join(" · ")}` : "";
  root.appendChild(el_("div", "eliza-bench-caption", `each column on its own scale: darker = better${all}`));
  root.appendChild(scroller);
  const notes = [...new Set((h.notes || []).filter((n) => n))];
  if (notes.length) {
    const ul = el_("ul", "eliza-bench-notes");
    for (const n of notes) ul.appendChild(el_("li", "", n));
    root.appendChild(ul);
  }
  if (a && a.x) {
    const over = a.averaged_over && a.averaged_over.length ? ` (averaged over ${a.averaged_over.join(", ")})` : "";
    root.appendChild(el_("div", "eliza-bench-caption", `mean score: ${a.y} × ${a.x}${over}`));
    const t = el_("table", "eliza-bench-axes");
    const r0 = el_("tr");
    r0.appendChild(el_("th", "", `${a.y} \\ ${a.x}`));
    for (const x of a.xs) r0.appendChild(el_("th", "num", String(x)));
    t.appendChild(r0);
    a.ys.forEach((y, i) => {
      const tr = el_("tr");
      tr.appendChild(el_("th", "", String(y)));
      a.xs.forEach((x, j) => {
        const td = el_("td", "eliza-bench-cell num", num("score", a.values[i][j]));
        td.dataset.x = String(x); td.dataset.y = String(y);
        paint(td, a.shade[i][j]);
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    root.appendChild(t);
  }
}

function drawSide(root, model) {
  const ans = model.get("answers") || { configs: [], rows: [] };
  const pa = model.get("pick_a"), pb = model.get("pick_b");
  const bar = el_("div", "eliza-bench-picks");
  for (const [name, cls, value] of [["pick_a", "eliza-bench-pick-a", pa], ["pick_b", "eliza-bench-pick-b", pb]]) {
    const sel = el_("select", cls);
    for (const c of ans.configs) {
      const o = el_("option", "", c);
      o.value = c;
      if (c === value) o.selected = true;
      sel.appendChild(o);
    }
    sel.addEventListener("change", () => { model.set(name, sel.value); model.save_changes(); });
    bar.appendChild(sel);
  }
  root.appendChild(bar);
  const verdict = model.get("verdict");
  if (verdict) root.appendChild(el_("div", "eliza-bench-verdict", verdict));
  // case by case: (case_id, repeat) in first-seen order, the two picks' answers side by side
  const keyOf = (r) => `${r[1]}\u0000${r[2]}`;
  const order = [], byKey = {};
  for (const r of ans.rows) {
    if (r[0] !== pa && r[0] !== pb) continue;
    const k = keyOf(r);
    if (!(k in byKey)) { byKey[k] = { case_id: r[1], repeat: r[2], input: r[3] }; order.push(k); }
    if (r[0] === pa) byKey[k].a = r;
    if (r[0] === pb) byKey[k].b = r;
  }
  const table = el_("table", "eliza-bench-side");
  const hr = el_("tr");
  for (const h of ["case", "input", pa || "—", pb || "—"]) hr.appendChild(el_("th", "", h));
  const thead = el_("thead"); thead.appendChild(hr);
  const tbody = el_("tbody");
  for (const k of order) {
    const e = byKey[k];
    const tr = el_("tr");
    tr.dataset.case = String(e.case_id);
    tr.appendChild(el_("td", "", `${e.case_id}` + (e.repeat ? ` #${e.repeat}` : "")));
    tr.appendChild(el_("td", "eliza-bench-input", e.input === null || e.input === undefined ? "" : String(e.input)));
    for (const [side, r] of [["a", e.a], ["b", e.b]]) {
      const td = el_("td", `eliza-bench-answer eliza-bench-answer-${side}`);
      if (r) {
        td.appendChild(el_("div", "eliza-bench-output", r[4] === null ? "—" : String(r[4])));
        td.appendChild(el_("span", "eliza-bench-score", `score ${num("score", r[5])}`));
      } else td.textContent = "—";
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  table.append(thead, tbody);
  const scroller = el_("div", "eliza-bench-scroll");
  scroller.appendChild(table);
  root.appendChild(scroller);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "eliza-bench";
  el.appendChild(root);

  function draw() {
    const tables = model.get("tables") || {};
    const view = model.get("view");
    const t = tables[view] || { columns: [], rows: [], kinds: {} };
    const sortBy = model.get("sort_by"), asc = model.get("ascending");
    const heat = model.get("heatmap") || {}, answers = model.get("answers") || { configs: [] };
    root.replaceChildren();

    const head = document.createElement("div");
    head.className = "eliza-bench-head";
    const title = document.createElement("b");
    title.textContent = model.get("title");
    head.appendChild(title);
    for (const [name, label] of TABS) {
      if (name === "heatmap" && !(heat.rows && heat.rows.length)) continue;
      if (name === "side" && answers.configs.length < 2) continue;
      const tab = document.createElement("button");
      tab.className = "eliza-bench-tab" + (name === view ? " active" : "");
      tab.dataset.view = name;
      tab.textContent = name in tables ? `${label} (${tables[name].rows.length})` : label;
      tab.addEventListener("click", () => { model.set("view", name); model.set("sort_by", ""); model.save_changes(); });
      head.appendChild(tab);
    }
    root.appendChild(head);
    if (view === "heatmap") return drawHeatmap(root, heat, model.get("axes"));
    if (view === "side") return drawSide(root, model);

    const col = t.columns.indexOf(sortBy);
    const rows = t.rows.slice();
    if (col >= 0) {
      rows.sort((r1, r2) => {
        const c = compare(r1[col], r2[col]);
        const empty = r1[col] === null || r2[col] === null || r1[col] === undefined || r2[col] === undefined;
        return empty || asc ? c : -c;
      });
    }
    const max = t.columns.map((c, j) => {
      const kind = t.kinds[c];
      if (!["high", "low", "number"].includes(kind) || c === "repeat") return 0;
      return Math.max(0, ...t.rows.map((r) => (typeof r[j] === "number" ? Math.abs(r[j]) : 0)));
    });

    const table = document.createElement("table");
    table.className = "eliza-bench-table";
    const tr = document.createElement("tr");
    t.columns.forEach((c, j) => {
      const th = document.createElement("th");
      th.className = "eliza-bench-th" + (t.kinds[c] === "text" ? "" : " num");
      th.dataset.column = c;
      th.textContent = c + (c === sortBy ? (asc ? " ▲" : " ▼") : "");
      th.title = "sort by " + c;
      th.addEventListener("click", () => {
        if (model.get("sort_by") === c) model.set("ascending", !model.get("ascending"));
        else { model.set("sort_by", c); model.set("ascending", t.kinds[c] !== "high"); }
        model.save_changes();
      });
      tr.appendChild(th);
    });
    const thead = document.createElement("thead");
    thead.appendChild(tr);
    const tbody = document.createElement("tbody");
    for (const r of rows) {
      const row = document.createElement("tr");
      t.columns.forEach((c, j) => {
        const td = document.createElement("td");
        const kind = t.kinds[c], v = r[j];
        const text = fmt(c, v);
        if (kind === "text") {
          td.textContent = text.length > 80 ? text.slice(0, 77) + "…" : text;
          if (text.length > 80) td.title = text;
          if (c === "error" && v) td.className = "eliza-bench-error";
        } else {
          td.className = "num";
          if (max[j] > 0 && typeof v === "number") {
            const bar = document.createElement("div");
            bar.className = `eliza-bench-bar ${kind}`;
            bar.style.width = `${(100 * Math.abs(v)) / max[j]}%`;
            td.appendChild(bar);
          }
          const span = document.createElement("span");
          span.textContent = text;
          td.appendChild(span);
        }
        row.appendChild(td);
      });
      tbody.appendChild(row);
    }
    table.append(thead, tbody);
    const scroller = document.createElement("div");
    scroller.className = "eliza-bench-scroll";
    scroller.appendChild(table);
    root.appendChild(scroller);
  }

  const events = ["change:tables", "change:view", "change:sort_by", "change:ascending", "change:title", "change:heatmap",
    "change:axes", "change:answers", "change:pick_a", "change:pick_b", "change:verdict"];
  events.forEach((e) => model.on(e, draw));
  draw();
  return () => events.forEach((e) => model.off(e, draw));
}

export default { render };
