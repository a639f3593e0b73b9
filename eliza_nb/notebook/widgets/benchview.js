// BenchmarkView front end: plain ESM, no imports.
// summary / runs: tables that arrive as columns (model.tables[view].data: numeric columns as
// binary buffers, text columns dictionary-encoded; see benchview/table.py). Only the rows in
// sight are in the page: a scroller holds a sizer as tall as all rows, and a table of the
// visible rows (plus a few either side, all ROW_H high) is moved to where they belong. Sorting
// and filtering work on an index array (typed arrays throughout), never on row objects; a sort
// or filter is one redraw of the visible rows. sort_by / ascending / filter are synced to
// Python (BenchmarkView.frame() returns the rows as shown), and every change of the model is
// drawn once: changes are gathered in a microtask, so a header click that sets both sort_by
// and ascending draws once, not twice.
// heatmap (model.heatmap: configuration x metric, shaded per column, darker = better, the mean
// score's interval as an SVG error bar; model.axes: grid axis x grid axis) and side by side
// (model.answers; the picks pick_a / pick_b are synced to Python, which answers with model.verdict).

const SVG = "http://www.w3.org/2000/svg";
const TABS = [["summary", "summary"], ["runs", "runs"], ["heatmap", "heatmap"], ["side", "side by side"]];
const ROW_H = 22; // px: every body row (benchview.css sets the same height)
const HEAD_H = 26; // px: the header row (benchview.css)
const VIEW_H = 420; // px: the scroller's max-height (benchview.css), used before it is laid out
const OVERSCAN = 6; // rows drawn above and below the visible ones
const ARRAYS = { f8: Float64Array, f4: Float32Array, i1: Int8Array, i2: Int16Array, i4: Int32Array,
  u1: Uint8Array, u2: Uint16Array, u4: Uint32Array, b1: Uint8Array };
const MISSING_CODE = { u1: 0xff, u2: 0xffff, u4: 0xffffffff };
// "column op value" (benchview/table.py's _CONDITION)
const CONDITION = /^\s*([^<>=!]+?)\s*(<=|>=|==|!=|<|>|=)\s*(.*?)\s*$/;

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

// a buffer (DataView, ArrayBuffer or typed array, as the widget manager hands it over) as a typed array
function typed(buf, dtype) {
  const Ctor = ARRAYS[dtype];
  if (!buf) return new Ctor(0);
  if (buf instanceof Ctor) return buf;
  let ab = buf instanceof ArrayBuffer ? buf : buf.buffer;
  let off = buf instanceof ArrayBuffer ? 0 : buf.byteOffset;
  const len = buf.byteLength;
  if (off % Ctor.BYTES_PER_ELEMENT) { ab = ab.slice(off, off + len); off = 0; } // a view needs alignment
  return new Ctor(ab, off, Math.floor(len / Ctor.BYTES_PER_ELEMENT));
}

// one table payload -> columns of typed arrays, with what drawing and sorting need
function decode(t) {
  const n = t.n || 0;
  const cols = (t.columns || []).map((name) => {
    const spec = (t.data || {})[name] || { dtype: "f8" };
    const c = { name, kind: (t.kinds || {})[name] || "text", dtype: spec.dtype, n, max: 0 };
    if (spec.codes !== undefined) {
      c.text = true; c.codes = typed(spec.codes, spec.dtype); c.values = spec.values || []; c.missing = MISSING_CODE[spec.dtype];
    } else {
      c.num = typed(spec.buf, spec.dtype);
      if (["high", "low", "number"].includes(c.kind) && name !== "repeat") {
        let m = 0;
        for (let i = 0; i < n; i++) { const a = Math.abs(c.num[i]); if (a > m) m = a; } // NaN never wins
        c.max = m;
      }
    }
    return c;
  });
  const byName = {};
  for (const c of cols) byName[c.name] = c;
  return { n, cols, byName, orders: new Map() };
}

function valueAt(c, i) {
  if (c.text) { const k = c.codes[i]; return k === c.missing ? null : c.values[k]; }
  const v = c.num[i];
  if (c.dtype === "b1") return v === 2 ? null : v === 1;
  return Number.isNaN(v) ? null : v;
}

// per row a number to sort by (NaN: missing); a text column's key is its value's rank
function sortKeys(c) {
  if (c.keys) return c.keys;
  const keys = new Float64Array(c.n);
  if (c.text) {
    const vs = c.values;
    const byText = vs.map((_, k) => k).sort((a, b) => (vs[a] < vs[b] ? -1 : vs[a] > vs[b] ? 1 : 0));
    const rank = new Float64Array(vs.length);
    byText.forEach((k, r) => { rank[k] = r; });
    for (let i = 0; i < c.n; i++) { const k = c.codes[i]; keys[i] = k === c.missing ? NaN : rank[k]; }
  } else if (c.dtype === "b1") {
    for (let i = 0; i < c.n; i++) keys[i] = c.num[i] === 2 ? NaN : c.num[i];
  } else keys.set(c.num);
  c.keys = keys;
  return keys;
}

// all rows by one column: stable (ties keep their order, as pandas' kind="stable"), missing last.
// No comparator sort: an LSD radix sort of the keys' IEEE bits (made to order as unsigned
// integers, flipped for descending), 16 bits per pass, a pass skipped where all rows share the
// digit; stable by construction. About 5x a comparator sort at 100k rows.
const F64 = new Float64Array(1), U32 = new Uint32Array(F64.buffer); // little-endian: [low word, high word]
function sortedBy(c, asc) {
  const keys = sortKeys(c), n = c.n;
  const hi = new Uint32Array(n), lo = new Uint32Array(n);
  let a = new Uint32Array(n), m = 0, tail = n;
  for (let i = 0; i < n; i++) {
    const v = keys[i];
    if (v !== v) continue;
    F64[0] = v === 0 ? 0 : v; // -0 sorts with 0
    let h = U32[1], l = U32[0];
    if (h & 0x80000000) { h = ~h >>> 0; l = ~l >>> 0; } else h = (h | 0x80000000) >>> 0;
    if (!asc) { h = ~h >>> 0; l = ~l >>> 0; }
    hi[i] = h; lo[i] = l; a[m++] = i;
  }
  const out = new Uint32Array(n);
  for (let i = n - 1; i >= 0; i--) if (keys[i] !== keys[i]) out[--tail] = i; // missing: last, in order
  let b = new Uint32Array(m);
  const count = new Uint32Array(65536);
  for (const [word, shift] of [[lo, 0], [lo, 16], [hi, 0], [hi, 16]]) {
    count.fill(0);
    for (let k = 0; k < m; k++) count[(word[a[k]] >>> shift) & 0xffff]++;
    if (m === 0 || count[(word[a[0]] >>> shift) & 0xffff] === m) continue; // one digit for all: nothing to do
    for (let d = 0, sum = 0; d < 65536; d++) { const x = count[d]; count[d] = sum; sum += x; }
    for (let k = 0; k < m; k++) { const i = a[k]; b[count[(word[i] >>> shift) & 0xffff]++] = i; }
    const t = a; a = b; b = t;
  }
  out.set(a.subarray(0, m));
  return out;
}

function condition(c, op, raw) {
  const n = c.n, hit = new Uint8Array(n);
  if (c.text) {
    if (!["=", "==", "!="].includes(op)) return hit;
    const k0 = c.values.indexOf(raw);
    for (let i = 0; i < n; i++) {
      const k = c.codes[i];
      if (k === c.missing) continue;
      hit[i] = op === "!=" ? k !== k0 : k === k0;
    }
    return hit;
  }
  const low = raw.toLowerCase();
  const t = low === "true" ? 1 : low === "false" ? 0 : raw === "" ? NaN : Number(raw);
  if (Number.isNaN(t) && low !== "nan") return hit;
  const keys = sortKeys(c);
  const test = { "<": (v) => v < t, "<=": (v) => v <= t, ">": (v) => v > t, ">=": (v) => v >= t,
    "=": (v) => v === t, "==": (v) => v === t, "!=": (v) => v !== t }[op];
  if (c.dtype === "b1" || c.text) { for (let i = 0; i < n; i++) { const v = keys[i]; hit[i] = v === v && test(v); } }
  else { const a = c.num; for (let i = 0; i < n; i++) { const v = a[i]; hit[i] = v === v && test(v); } }
  return hit;
}

// which rows a filter keeps (benchview/table.py's filter_mask); null: all
function filterMask(tbl, query) {
  const parts = (query || "").split(";").map((p) => p.trim()).filter((p) => p);
  if (!parts.length) return null;
  const n = tbl.n, keep = new Uint8Array(n).fill(1);
  for (const part of parts) {
    const m = CONDITION.exec(part);
    const c = m ? tbl.byName[m[1].trim()] : undefined;
    let hit;
    if (c) hit = condition(c, m[2], m[3]);
    else {
      const needle = part.toLowerCase();
      hit = new Uint8Array(n);
      for (const col of tbl.cols) {
        if (col.kind !== "text" || !col.text) continue;
        const match = Uint8Array.from(col.values, (v) => (v.toLowerCase().includes(needle) ? 1 : 0));
        const codes = col.codes, miss = col.missing;
        for (let i = 0; i < n; i++) { const k = codes[i]; if (k !== miss && match[k]) hit[i] = 1; }
      }
    }
    for (let i = 0; i < n; i++) keep[i] &= hit[i];
  }
  return keep;
}

// the rows on show, in order: the cached sort of the column, then the filter
function rowsFor(tbl, sortBy, asc, query) {
  const c = tbl.byName[sortBy];
  let order;
  if (!c) { order = new Uint32Array(tbl.n); for (let i = 0; i < tbl.n; i++) order[i] = i; }
  else {
    const key = `${sortBy}\u0000${asc}`;
    order = tbl.orders.get(key);
    if (!order) { order = sortedBy(c, asc); tbl.orders.set(key, order); }
  }
  const keep = filterMask(tbl, query);
  return keep ? order.filter((i) => keep[i] === 1) : order;
}

// column widths in px: from the header and the widest (sampled) value, text capped
function widths(tbl) {
  return tbl.cols.map((c) => {
    let chars = c.name.length * 1.15 + 2; // headers are bold, and carry the sort arrow
    if (c.text) {
      const vs = c.values, step = Math.max(1, Math.floor(vs.length / 2000));
      for (let k = 0; k < vs.length; k += step) chars = Math.max(chars, Math.min(vs[k].length, 44));
    } else if (c.dtype !== "b1") {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < c.n; i++) { const v = c.num[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
      if (lo <= hi) chars = Math.max(chars, fmt(c.name, lo).length, fmt(c.name, hi).length);
    }
    return Math.round(chars * 7 + 18);
  });
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
  const verdict = el_("div", "eliza-bench-verdict", model.get("verdict") || "");
  verdict.hidden = !model.get("verdict");
  root.appendChild(verdict);
  if (ans.cut) root.appendChild(el_("div", "eliza-bench-caption", `the first ${ans.side_rows || 500} runs of each configuration (${ans.cut.toLocaleString("en")} more in the kernel: view.side_by_side())`));
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

// one body row: position k in the shown order, row i of the frame
function rowEl(tbl, i, k) {
  const tr = document.createElement("tr");
  tr.dataset.row = String(k);
  tr.dataset.index = String(i);
  for (const c of tbl.cols) {
    const td = document.createElement("td");
    const v = valueAt(c, i), text = fmt(c.name, v);
    if (c.kind === "text") {
      td.textContent = text;
      if (text.length > 40) td.title = text;
      if (c.name === "error" && v) td.className = "eliza-bench-error";
    } else {
      td.className = "num";
      if (c.max > 0 && typeof v === "number") {
        const bar = document.createElement("div");
        bar.className = `eliza-bench-bar ${c.kind}`;
        bar.style.width = `${(100 * Math.abs(v)) / c.max}%`;
        td.appendChild(bar);
      }
      const span = document.createElement("span");
      span.textContent = text;
      td.appendChild(span);
    }
    tr.appendChild(td);
  }
  return tr;
}

function render({ model, el }) {
  const root = el_("div", "eliza-bench");
  root.dataset.draws = "0";
  el.appendChild(root);
  const decoded = new WeakMap(); // a tables payload -> its decoded tables (decoded once per payload)
  let drawn = null; // the model's values the page shows
  let grid = null; // the summary / runs table on show
  let pending = false;

  function snapshot() {
    const s = {};
    for (const k of ["view", "title", "tables", "heatmap", "axes", "answers", "pick_a", "pick_b", "verdict",
      "sort_by", "ascending", "filter"]) s[k] = model.get(k);
    return s;
  }
  const same = (a, b, keys) => keys.every((k) => a[k] === b[k]);

  function table(s) {
    let all = decoded.get(s.tables);
    if (!all) { all = {}; decoded.set(s.tables, all); }
    if (!all[s.view]) all[s.view] = decode(s.tables[s.view] || { columns: [], n: 0, data: {}, kinds: {} });
    return all[s.view];
  }

  // what changed since the last draw decides what is drawn again; each update is one draw
  function update() {
    const s = snapshot();
    const isTable = s.view === "summary" || s.view === "runs";
    if (drawn && same(s, drawn, ["view", "title", "tables", "heatmap", "answers"])) {
      if (isTable && grid) {
        if (same(s, drawn, ["sort_by", "ascending", "filter"])) { drawn = s; return; }
        reorder(s, true);
      } else if (s.view === "heatmap" && same(s, drawn, ["axes"])) { drawn = s; return; }
      else if (s.view === "side" && same(s, drawn, ["pick_a", "pick_b"])) {
        // the kernel's verdict on the picks arrives after them: written in place, not a redraw
        const v = content.querySelector(".eliza-bench-verdict");
        if (v) { v.textContent = s.verdict || ""; v.hidden = !s.verdict; }
        drawn = s;
        return;
      }
      else drawContent(s);
    } else {
      drawHead(s);
      drawContent(s);
    }
    drawn = s;
    root.dataset.draws = String(Number(root.dataset.draws) + 1);
  }
  function schedule() {
    if (pending) return;
    pending = true;
    queueMicrotask(() => { pending = false; update(); });
  }

  let head = null, content = null;
  function drawHead(s) {
    root.replaceChildren();
    head = el_("div", "eliza-bench-head");
    head.appendChild(el_("b", "", s.title));
    const tables = s.tables || {}, heat = s.heatmap || {}, answers = s.answers || { configs: [] };
    for (const [name, label] of TABS) {
      if (name === "heatmap" && !(heat.rows && heat.rows.length)) continue;
      if (name === "side" && (answers.configs || []).length < 2) continue;
      const tab = el_("button", "eliza-bench-tab" + (name === s.view ? " active" : ""));
      tab.dataset.view = name;
      tab.textContent = name in tables ? `${label} (${(tables[name].n || 0).toLocaleString("en")})` : label;
      tab.addEventListener("click", () => { model.set({ view: name, sort_by: "", filter: "" }); model.save_changes(); });
      head.appendChild(tab);
    }
    content = el_("div", "eliza-bench-content");
    root.append(head, content);
  }

  function drawContent(s) {
    content.replaceChildren();
    grid = null;
    if (s.view === "heatmap") return drawHeatmap(content, s.heatmap || {}, s.axes);
    if (s.view === "side") return drawSide(content, model);
    drawGrid(s);
  }

  function drawGrid(s) {
    const tbl = table(s);
    const tools = el_("div", "eliza-bench-tools");
    const input = el_("input", "eliza-bench-filter");
    input.type = "search";
    input.placeholder = "filter: text, or column > value (; = and)";
    input.value = s.filter || "";
    let timer = 0;
    const send = () => {
      clearTimeout(timer);
      if (input.value !== model.get("filter")) { model.set("filter", input.value); model.save_changes(); }
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(send, 250); });
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") send(); });
    const count = el_("span", "eliza-bench-count");
    tools.append(input, count);

    const scroller = el_("div", "eliza-bench-scroll eliza-bench-virtual");
    const sizer = el_("div", "eliza-bench-sizer");
    const tableEl = el_("table", "eliza-bench-table");
    const colgroup = el_("colgroup");
    const w = widths(tbl);
    w.forEach((px) => { const col = el_("col"); col.style.width = `${px}px`; colgroup.appendChild(col); });
    const total = w.reduce((a, b) => a + b, 0);
    tableEl.style.width = `${total}px`;
    sizer.style.width = `${total}px`; // the table is positioned absolutely: the sizer carries its width
    const tr = el_("tr");
    const ths = tbl.cols.map((c) => {
      const th = el_("th", "eliza-bench-th" + (c.kind === "text" ? "" : " num"));
      th.dataset.column = c.name;
      th.title = "sort by " + c.name;
      th.addEventListener("click", () => {
        if (model.get("sort_by") === c.name) model.set("ascending", !model.get("ascending"));
        else model.set({ sort_by: c.name, ascending: c.kind !== "high" });
        model.save_changes();
      });
      tr.appendChild(th);
      return th;
    });
    const thead = el_("thead"); thead.appendChild(tr);
    const tbody = el_("tbody");
    tableEl.append(colgroup, thead, tbody);
    sizer.appendChild(tableEl);
    scroller.appendChild(sizer);
    let frame = 0;
    scroller.addEventListener("scroll", () => {
      if (!frame) frame = requestAnimationFrame(() => { frame = 0; paint(false); });
    }, { passive: true });
    content.append(tools, scroller);
    grid = { tbl, input, count, scroller, sizer, tableEl, tbody, ths, rows: null, first: -1, last: -1 };
    reorder(s, false);
  }

  // the order of the rows (sort, filter), then the visible window
  function reorder(s, toTop) {
    const t0 = performance.now();
    const g = grid;
    g.rows = rowsFor(g.tbl, s.sort_by, s.ascending, s.filter);
    g.tbl.cols.forEach((c, j) => { g.ths[j].textContent = c.name + (c.name === s.sort_by ? (s.ascending ? " ▲" : " ▼") : ""); });
    if (g.input.value !== (s.filter || "") && document.activeElement !== g.input) g.input.value = s.filter || "";
    const n = g.rows.length;
    g.count.textContent = n === g.tbl.n ? `${n.toLocaleString("en")} rows` : `${n.toLocaleString("en")} of ${g.tbl.n.toLocaleString("en")} rows`;
    g.sizer.style.height = `${HEAD_H + n * ROW_H}px`;
    if (toTop) g.scroller.scrollTop = 0;
    paint(true);
    root.dataset.sortMs = (performance.now() - t0).toFixed(1);
    root.dataset.shown = String(n);
  }

  function paint(force) {
    const g = grid;
    if (!g) return;
    const n = g.rows.length, top = g.scroller.scrollTop, h = g.scroller.clientHeight || VIEW_H;
    const first = Math.max(0, Math.min(n, Math.floor(Math.max(0, top - HEAD_H) / ROW_H) - OVERSCAN));
    const last = Math.min(n, Math.ceil(top / ROW_H + h / ROW_H) + OVERSCAN);
    if (!force && first === g.first && last === g.last) return;
    g.first = first; g.last = last;
    g.tableEl.style.top = `${first * ROW_H}px`;
    const frag = document.createDocumentFragment();
    for (let k = first; k < last; k++) frag.appendChild(rowEl(g.tbl, g.rows[k], k));
    g.tbody.replaceChildren(frag);
    root.dataset.first = String(first);
    if (!root.dataset.paintedAt) root.dataset.paintedAt = String(performance.timeOrigin + performance.now());
  }

  const t0 = performance.now();
  model.on("change", schedule);
  update();
  root.dataset.renderMs = (performance.now() - t0).toFixed(1);
  return () => model.off("change", schedule);
}

export default { render };
