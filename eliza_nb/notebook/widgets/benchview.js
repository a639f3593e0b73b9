// BenchmarkView front end: plain ESM, no imports. Two tables (summary, runs) from
// model.tables; click a header to sort (sort_by / ascending are synced to Python);
// numeric cells carry a bar scaled to the column's largest absolute value.

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

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "eliza-bench";
  el.appendChild(root);

  function draw() {
    const tables = model.get("tables") || {};
    const view = model.get("view");
    const t = tables[view] || { columns: [], rows: [], kinds: {} };
    const sortBy = model.get("sort_by"), asc = model.get("ascending");
    root.replaceChildren();

    const head = document.createElement("div");
    head.className = "eliza-bench-head";
    const title = document.createElement("b");
    title.textContent = model.get("title");
    head.appendChild(title);
    for (const name of ["summary", "runs"]) {
      const tab = document.createElement("button");
      tab.className = "eliza-bench-tab" + (name === view ? " active" : "");
      tab.textContent = `${name} (${(tables[name] || { rows: [] }).rows.length})`;
      tab.addEventListener("click", () => { model.set("view", name); model.set("sort_by", ""); model.save_changes(); });
      head.appendChild(tab);
    }
    root.appendChild(head);

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

  const events = ["change:tables", "change:view", "change:sort_by", "change:ascending", "change:title"];
  events.forEach((e) => model.on(e, draw));
  draw();
  return () => events.forEach((e) => model.off(e, draw));
}

export default { render };
