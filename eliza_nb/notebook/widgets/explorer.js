// EmbeddingExplorer front end: plain ESM, no imports (works offline, no CDN).
// The kernel sends binary buffers: `xy` (uint16 pairs, each axis over its range) and
// `codes` (one uint8/uint16 label code per point) with a `legend`. Points are drawn with
// WebGL (WebGL2 or 1; canvas 2D where neither exists) at low alpha, so overlaps read as
// density. A uniform grid over the points answers "which point is under the mouse"; texts,
// neighbours and search results are asked of the kernel with custom messages, one request
// in flight per kind, and cached. Drag pans, the wheel zooms, a double click resets; while
// the view moves the last drawing is only transformed, and redrawn once the view is still.

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const PAD = 10;
const TIMEOUT_MS = 4000; // no reply by then: tell the user why nothing shows
const SETTLE_MS = 150; // a moving view is redrawn in full once it has been still this long
const CACHE = 5000;

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);

function bytesOf(v) {
  if (!v) return new Uint8Array(0);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return new Uint8Array(0);
}

function typed(Kind, v) {
  const b = bytesOf(v);
  const size = Kind.BYTES_PER_ELEMENT;
  if (b.byteOffset % size === 0) return new Kind(b.buffer, b.byteOffset, Math.floor(b.byteLength / size));
  return new Kind(b.slice().buffer, 0, Math.floor(b.byteLength / size)); // misaligned: copy
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- spatial index: points bucketed into a G x G grid over [0, 1]^2 -------------------------
function buildGrid(xy, n) {
  const G = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(n / 2))));
  const cellOf = new Uint32Array(n);
  const start = new Uint32Array(G * G + 1);
  for (let i = 0; i < n; i++) {
    const gx = Math.min(G - 1, (xy[2 * i] * G) >>> 16), gy = Math.min(G - 1, (xy[2 * i + 1] * G) >>> 16);
    const c = gy * G + gx;
    cellOf[i] = c;
    start[c + 1]++;
  }
  for (let c = 0; c < G * G; c++) start[c + 1] += start[c];
  const fill = start.slice(0, G * G);
  const items = new Uint32Array(n);
  for (let i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;
  return { G, start, items };
}

// -- WebGL drawing ---------------------------------------------------------------------------
const VS = `
attribute vec2 a_xy; attribute float a_code;
uniform vec2 u_center; uniform float u_scale; uniform vec2 u_canvas; uniform float u_pad;
uniform float u_size; uniform float u_alpha; uniform float u_mode; uniform vec3 u_palette[8];
varying vec4 v_color;
void main() {
  vec2 inner = u_canvas - 2.0 * u_pad;
  vec2 p = (a_xy - u_center) * u_scale + 0.5;
  vec2 px = vec2(u_pad + p.x * inner.x, u_pad + (1.0 - p.y) * inner.y);
  gl_Position = vec4(px.x / u_canvas.x * 2.0 - 1.0, 1.0 - px.y / u_canvas.y * 2.0, 0.0, 1.0);
  gl_PointSize = u_size;
  vec3 c = u_palette[int(mod(a_code, 8.0))];
  v_color = u_mode > 0.5 ? vec4(0.6, 0.6, 0.6, u_alpha) : vec4(c, u_alpha);
}`;
const FS = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  if (dot(d, d) > 0.25) discard;
  gl_FragColor = v_color;
}`;

function makeGL(canvas) {
  const opts = { antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: false };
  let gl = canvas.getContext("webgl2", opts), kind = "webgl2";
  if (!gl) { gl = canvas.getContext("webgl", opts); kind = "webgl"; }
  if (!gl) return null;
  const shader = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
  const u = {};
  for (const name of ["u_center", "u_scale", "u_canvas", "u_pad", "u_size", "u_alpha", "u_mode", "u_palette"]) {
    u[name] = gl.getUniformLocation(prog, name);
  }
  return { gl, kind, prog, u, aXy: gl.getAttribLocation(prog, "a_xy"), aCode: gl.getAttribLocation(prog, "a_code"), sets: {} };
}

// A drawable set of points: positions (Uint16Array pairs) and codes on the GPU.
function upload(g, name, xy, codes) {
  const { gl } = g;
  const old = g.sets[name];
  if (old) { gl.deleteBuffer(old.xy); if (old.codes) gl.deleteBuffer(old.codes); }
  const set = { n: xy.length / 2, xy: gl.createBuffer(), codes: null, codeType: 0 };
  gl.bindBuffer(gl.ARRAY_BUFFER, set.xy);
  gl.bufferData(gl.ARRAY_BUFFER, xy, gl.STATIC_DRAW);
  if (codes && codes.length) {
    set.codes = gl.createBuffer();
    set.codeType = codes.BYTES_PER_ELEMENT === 1 ? gl.UNSIGNED_BYTE : gl.UNSIGNED_SHORT;
    gl.bindBuffer(gl.ARRAY_BUFFER, set.codes);
    gl.bufferData(gl.ARRAY_BUFFER, codes, gl.STATIC_DRAW);
  }
  g.sets[name] = set;
}

function drawSet(g, name, uni) {
  const set = g.sets[name];
  if (!set || !set.n) return;
  const { gl, u } = g;
  gl.bindBuffer(gl.ARRAY_BUFFER, set.xy);
  gl.enableVertexAttribArray(g.aXy);
  gl.vertexAttribPointer(g.aXy, 2, gl.UNSIGNED_SHORT, true, 0, 0);
  if (set.codes) {
    gl.bindBuffer(gl.ARRAY_BUFFER, set.codes);
    gl.enableVertexAttribArray(g.aCode);
    gl.vertexAttribPointer(g.aCode, 1, set.codeType, false, 0, 0);
  } else {
    gl.disableVertexAttribArray(g.aCode);
    gl.vertexAttrib1f(g.aCode, 0);
  }
  gl.uniform1f(u.u_size, uni.size);
  gl.uniform1f(u.u_alpha, uni.alpha);
  gl.uniform1f(u.u_mode, uni.mode);
  gl.drawArrays(gl.POINTS, 0, set.n);
}

function render({ model, el: host }) {
  const root = el("div", "eliza-explorer");
  const title = el("div", "eliza-explorer-title");
  const bar = el("div", "eliza-explorer-bar");
  const search = el("input", "eliza-explorer-search");
  search.type = "search";
  search.placeholder = "search texts…";
  const found = el("span", "eliza-explorer-found");
  const reset = el("button", "eliza-explorer-reset", "reset view");
  bar.append(search, found, reset);
  const plot = el("div", "eliza-explorer-plot");
  const canvas = el("canvas", "eliza-explorer-canvas");
  const overlay = el("canvas", "eliza-explorer-overlay");
  const tip = el("div", "eliza-explorer-tooltip");
  tip.style.display = "none";
  plot.append(canvas, overlay, tip);
  const side = el("div", "eliza-explorer-neighbours");
  const body = el("div", "eliza-explorer-body");
  body.append(plot, side);
  const axes = el("div", "eliza-explorer-axes");
  const legend = el("div", "eliza-explorer-legend");
  root.append(title, bar, body, axes, legend);
  host.appendChild(root);

  const t0 = performance.now();
  let W = 0, H = 0, dpr = 1, n = 0, xy = new Uint16Array(0), codes = null, grid = null;
  let g = null, ctx2d = null, drawn = null, settle = 0;
  let view = { cx: 0.5, cy: 0.5, scale: 1 };
  let hover = -1, neighbours = [], matches = null, frame = 0, firstDrawn = false;
  const texts = new Map(); // index -> {text, label}
  const pending = { text: null, neighbours: null, search: null }; // the request in flight per kind
  const queued = { text: null, search: null };
  let seq = 0, offline = false, hoverAt = 0, selecting = false;

  // -- geometry ------------------------------------------------------------------------------
  const innerW = () => W - 2 * PAD, innerH = () => H - 2 * PAD;
  const screenX = (u) => PAD + ((u - view.cx) * view.scale + 0.5) * innerW();
  const screenY = (v) => PAD + (0.5 - (v - view.cy) * view.scale) * innerH();
  const pointSize = () => {
    const base = n <= 1000 ? 7 : n <= 10_000 ? 5 : n <= 100_000 ? 3 : n <= 300_000 ? 2 : 1.5;
    return Math.min(14, base * Math.sqrt(view.scale));
  };
  const baseAlpha = () => Math.max(0.12, Math.min(0.85, 2500 / Math.max(1, n) ** 0.85));

  function pick(sx, sy) {
    if (!grid || !n) return -1;
    const r = Math.max(5, pointSize() / 2 + 2);
    const u = view.cx + ((sx - PAD) / innerW() - 0.5) / view.scale;
    const v = view.cy + (0.5 - (sy - PAD) / innerH()) / view.scale;
    const ru = r / (innerW() * view.scale), rv = r / (innerH() * view.scale);
    const { G, start, items } = grid;
    const gx0 = Math.max(0, Math.floor((u - ru) * G)), gx1 = Math.min(G - 1, Math.floor((u + ru) * G));
    const gy0 = Math.max(0, Math.floor((v - rv) * G)), gy1 = Math.min(G - 1, Math.floor((v + rv) * G));
    let best = -1, bestD = r * r;
    for (let gy = gy0; gy <= gy1; gy++) {
      for (let gx = gx0; gx <= gx1; gx++) {
        const c = gy * G + gx;
        for (let k = start[c]; k < start[c + 1]; k++) {
          const i = items[k];
          const dx = screenX(xy[2 * i] / 65535) - sx, dy = screenY(xy[2 * i + 1] / 65535) - sy;
          const d = dx * dx + dy * dy;
          if (d < bestD || (d === bestD && i > best)) { best = i; bestD = d; } // ties: the one drawn on top
        }
      }
    }
    return best;
  }

  // -- drawing -------------------------------------------------------------------------------
  function setup() {
    W = model.get("width"); H = model.get("height");
    dpr = window.devicePixelRatio || 1;
    for (const c of [canvas, overlay]) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
      c.style.width = `${W}px`; c.style.height = `${H}px`;
    }
    plot.style.width = `${W}px`; plot.style.height = `${H}px`;
    if (!g && !ctx2d) {
      try {
        g = model.get("renderer") === "canvas2d" ? null : makeGL(canvas);
      } catch (e) {
        console.warn("EmbeddingExplorer: WebGL failed, using canvas 2D", e);
        g = null;
      }
      if (!g) ctx2d = canvas.getContext("2d");
      root.dataset.renderer = g ? g.kind : "canvas2d";
    }
  }

  function load() {
    n = model.get("count") || 0;
    xy = typed(Uint16Array, model.get("xy"));
    n = Math.min(n, xy.length / 2);
    const cb = model.get("code_bytes") === 2 ? Uint16Array : Uint8Array;
    codes = bytesOf(model.get("codes")).byteLength ? typed(cb, model.get("codes")) : null;
    grid = buildGrid(xy, n);
    if (g) upload(g, "all", xy, codes);
    matches = null;
    root.dataset.points = String(n);
    title.textContent = model.get("title");
    const [ax, ay] = model.get("axes") || ["x", "y"];
    axes.textContent = `x: ${ax} · y: ${ay} · drag to pan, wheel to zoom, double-click to reset`;
    drawLegend();
  }

  function drawLegend() {
    legend.replaceChildren();
    const items = model.get("legend") || [];
    for (const [k, [name, count]] of items.slice(0, 24).entries()) {
      const item = el("span", "eliza-explorer-key");
      const sw = el("span", "eliza-explorer-swatch");
      sw.style.background = PALETTE[k % PALETTE.length];
      item.append(sw, document.createTextNode(`${name} (${Number(count).toLocaleString()})`));
      legend.appendChild(item);
    }
    if (items.length > 24) legend.appendChild(el("span", "eliza-explorer-hint", `+${items.length - 24} more labels`));
  }

  function drawGL() {
    const { gl, u } = g;
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA); // alpha accumulates: overlaps get denser
    gl.useProgram(g.prog);
    gl.uniform2f(u.u_center, view.cx, view.cy);
    gl.uniform1f(u.u_scale, view.scale);
    gl.uniform2f(u.u_canvas, W, H);
    gl.uniform1f(u.u_pad, PAD);
    gl.uniform3fv(u.u_palette, PALETTE.flatMap(rgb));
    const size = pointSize() * dpr, alpha = baseAlpha();
    if (matches) {
      drawSet(g, "all", { size, alpha: Math.min(alpha, 0.25), mode: 1 });
      drawSet(g, "matches", { size: size + dpr, alpha: Math.max(alpha, 0.6), mode: 0 });
    } else {
      drawSet(g, "all", { size, alpha, mode: 0 });
    }
  }

  function draw2d() {
    const c = ctx2d, w = canvas.width, h = canvas.height;
    c.clearRect(0, 0, w, h);
    const img = c.getImageData(0, 0, w, h), px = img.data;
    const cols = PALETTE.map(rgb).map((a) => a.map((x) => x * 255));
    const size = Math.max(1, Math.round(pointSize() * dpr * 0.6));
    const greyCol = [150, 150, 150];
    const paint = (pts, cds, alpha, grey) => {
      const m = pts.length / 2;
      for (let i = 0; i < m; i++) {
        const x = Math.round(screenX(pts[2 * i] / 65535) * dpr), y = Math.round(screenY(pts[2 * i + 1] / 65535) * dpr);
        if (x < 0 || y < 0 || x >= w || y >= h) continue;
        const col = grey ? greyCol : cols[(cds ? cds[i] : 0) % cols.length];
        for (let oy = 0; oy < size && y + oy < h; oy++) {
          for (let ox = 0; ox < size && x + ox < w; ox++) {
            const o = 4 * ((y + oy) * w + x + ox);
            const a0 = px[o + 3] / 255, a = alpha + a0 * (1 - alpha);
            for (let ch = 0; ch < 3; ch++) px[o + ch] = (col[ch] * alpha + px[o + ch] * a0 * (1 - alpha)) / a;
            px[o + 3] = a * 255;
          }
        }
      }
    };
    if (matches) {
      paint(xy, codes, Math.min(baseAlpha(), 0.25), true);
      paint(matches.xy, matches.codes, 0.7, false);
    } else {
      paint(xy, codes, baseAlpha(), false);
    }
    c.putImageData(img, 0, 0);
  }

  function drawOverlay() {
    const c = overlay.getContext("2d");
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, W, H);
    c.strokeStyle = "rgba(128,128,128,0.5)";
    c.strokeRect(0.5, 0.5, W - 1, H - 1);
    const ring = (i, r, stroke, fill, width) => {
      const x = screenX(xy[2 * i] / 65535), y = screenY(xy[2 * i + 1] / 65535);
      c.beginPath();
      c.arc(x, y, r, 0, 2 * Math.PI);
      if (fill) { c.fillStyle = fill; c.fill(); }
      c.lineWidth = width; c.strokeStyle = stroke; c.stroke();
    };
    for (const [j] of neighbours) if (j < n) ring(j, 5, "#111", "rgba(255,255,255,0.8)", 2);
    const sel = model.get("selected");
    if (sel >= 0 && sel < n) ring(sel, 7, "#111", PALETTE[codes ? codes[sel] % PALETTE.length : 0], 3);
    if (hover >= 0 && hover < n) ring(hover, 6, "#f59e0b", null, 2);
  }

  function drawNow() {
    const t = performance.now();
    if (!W) setup();
    clearTimeout(settle);
    if (g) drawGL(); else if (ctx2d) draw2d();
    drawn = { ...view };
    canvas.style.transform = "";
    drawOverlay();
    root.dataset.drawMs = (performance.now() - t).toFixed(1);
    if (!firstDrawn) {
      firstDrawn = true;
      root.dataset.firstDrawMs = (performance.now() - t0).toFixed(1);
      root.dataset.drawnAt = String(Date.now()); // epoch ms: the bench compares it with the kernel's clock
      root.dataset.drawn = "1";
    }
  }

  function requestDraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; drawNow(); });
  }

  // While the view moves, the last full drawing is only moved and scaled (a CSS transform:
  // no redraw of a million points per mouse event); it is redrawn once the view is still.
  function moveView() {
    if (drawn) {
      const k = view.scale / drawn.scale;
      const tx = (drawn.cx - view.cx) * view.scale * innerW(), ty = -(drawn.cy - view.cy) * view.scale * innerH();
      canvas.style.transformOrigin = `${PAD + innerW() / 2}px ${PAD + innerH() / 2}px`;
      canvas.style.transform = `translate(${tx}px, ${ty}px) scale(${k})`;
    }
    drawOverlay();
    clearTimeout(settle);
    settle = setTimeout(requestDraw, SETTLE_MS);
  }

  // -- talking to the kernel -------------------------------------------------------------------
  // ipywidgets marks a view whose model has no live comm (restored from saved state, or the
  // kernel restarted): nothing will answer there.
  const disconnected = () => host.classList.contains("jupyter-widgets-disconnected");

  const viewId = Math.random().toString(36).slice(2); // replies reach every view of the model
  function ask(kind, body) {
    const id = `${viewId}:${++seq}`;
    pending[kind] = { id, at: performance.now(), body };
    if (disconnected()) { offline = true; showOffline(kind, body, true); return; }
    try {
      model.send({ type: kind, id, ...body });
    } catch (e) {
      offline = true;
      showOffline(kind, body, true);
      return;
    }
    setTimeout(() => {
      // still unanswered: say so, but keep the request, a busy kernel (Run All) answers late
      if (pending[kind] && pending[kind].id === id) { offline = true; showOffline(kind, body, disconnected()); }
    }, TIMEOUT_MS);
  }

  function showOffline(kind, body, gone) {
    if (gone) root.dataset.offline = "1";
    const msg = gone ? "needs the running kernel: re-run the cell to reconnect"
      : "no answer from the kernel yet (busy? if it restarted, re-run the cell)";
    if (kind === "text" && hover === body.i) {
      tip.textContent = `#${body.i}${labelOf(body.i)} — text ${msg}`;
    } else if (kind === "neighbours") {
      side.replaceChildren(el("div", "eliza-explorer-hint", `point #${body.i}${labelOf(body.i)}: neighbours ${msg}`));
    } else if (kind === "search") {
      found.textContent = `search ${msg}`;
    }
  }

  function labelOf(i) {
    const items = model.get("legend") || [];
    return codes && items.length ? ` · ${items[codes[i]][0]}` : "";
  }

  function remember(i, text, label) {
    if (texts.size >= CACHE) texts.delete(texts.keys().next().value);
    texts.set(i, { text, label });
  }

  function onMessage(msg, buffers) {
    if (!msg || !msg.type || !pending[msg.type] || pending[msg.type].id !== msg.id) return;
    const req = pending[msg.type];
    pending[msg.type] = null;
    offline = false;
    delete root.dataset.offline;
    if (msg.type === "text") {
      if (!msg.error) remember(msg.i, msg.text, msg.label);
      if (hover === msg.i) showTip(msg.i, hoverAt);
      if (queued.text !== null) { const i = queued.text; queued.text = null; fetchText(i); }
    } else if (msg.type === "neighbours") {
      if (msg.error) return;
      remember(msg.i, msg.text, msg.label);
      neighbours = msg.items.map(([j, s, text, label]) => { remember(j, text, label); return [j, s]; });
      showSide(msg.i, msg.items);
      root.dataset.clickMs = (performance.now() - req.at).toFixed(1);
      root.dataset.clickKernelMs = String(msg.ms); // of which the look-up in the kernel
      drawOverlay();
    } else if (msg.type === "search") {
      const idx = buffers && buffers.length ? typed(Uint32Array, buffers[0]) : new Uint32Array(0);
      setMatches(idx, msg);
      if (queued.search !== null) { const q = queued.search; queued.search = null; runSearch(q); }
    }
  }

  function fetchText(i) {
    if (texts.has(i)) return showTip(i, performance.now());
    if (pending.text && !offline) { queued.text = i; return; } // one in flight: no flood while the mouse moves
    ask("text", { i });
  }

  // -- hover, click, search --------------------------------------------------------------------
  function placeTip(i) {
    const x = screenX(xy[2 * i] / 65535), y = screenY(xy[2 * i + 1] / 65535);
    tip.style.left = `${Math.min(W - 40, x + 12)}px`;
    tip.style.top = `${Math.max(0, y - 12)}px`;
    tip.style.display = "block";
  }

  function showTip(i, since) {
    if (hover !== i) return;
    const t = texts.get(i);
    tip.textContent = t ? t.text + (t.label ? ` [${t.label}]` : "") : `#${i}${labelOf(i)} …`;
    placeTip(i);
    if (t) {
      tip.dataset.index = String(i);
      root.dataset.hoverMs = (performance.now() - since).toFixed(1);
    }
  }

  function setHover(i, at) {
    if (i === hover) return;
    hover = i;
    hoverAt = at;
    delete tip.dataset.index;
    if (i < 0) { tip.style.display = "none"; drawOverlay(); return; }
    if (texts.has(i)) showTip(i, at);
    else {
      tip.textContent = `#${i}${labelOf(i)} …`;
      placeTip(i);
      fetchText(i);
    }
    drawOverlay();
  }

  function showSide(i, items) {
    side.replaceChildren();
    if (!(i >= 0 && i < n)) {
      side.appendChild(el("div", "eliza-explorer-hint", "Click a point to list its nearest neighbours."));
      return;
    }
    const t = texts.get(i);
    side.appendChild(el("div", "eliza-explorer-selected", t ? t.text : `point #${i}`));
    if (!items) { side.appendChild(el("div", "eliza-explorer-hint", "finding its nearest neighbours…")); return; }
    if (!items.length) { side.appendChild(el("div", "eliza-explorer-hint", "no other points")); return; }
    side.appendChild(el("div", "eliza-explorer-hint", "nearest neighbours (cosine, full vectors):"));
    const list = el("ol");
    for (const [j, score, text] of items) {
      const li = el("li", "eliza-explorer-neighbour");
      li.dataset.index = String(j);
      li.append(el("span", "eliza-explorer-score", Number(score).toFixed(3)), document.createTextNode(" " + text));
      li.addEventListener("click", () => select(j));
      list.appendChild(li);
    }
    side.appendChild(list);
  }

  function select(i) {
    if (model.get("selected") !== i) {
      selecting = true; // our own change: not a request from the kernel
      try {
        model.set("selected", i);
        model.save_changes();
      } catch (e) {
        offline = true;
      } finally {
        selecting = false;
      }
    }
    neighbours = [];
    showSide(i, null);
    drawOverlay();
    if (i >= 0) ask("neighbours", { i });
  }

  function onSelectedFromKernel() {
    const i = model.get("selected");
    if (selecting) return;
    if (pending.neighbours && pending.neighbours.body.i === i) return;
    select(i);
  }

  function setMatches(idx, msg) {
    const m = idx.length;
    root.dataset.matches = String(m);
    found.textContent = msg.capped ? `first ${m.toLocaleString()} matches (capped)` : `${m.toLocaleString()} match${m === 1 ? "" : "es"}`;
    const mxy = new Uint16Array(2 * m), mc = codes ? new codes.constructor(m) : null;
    for (let k = 0; k < m; k++) {
      const i = idx[k];
      mxy[2 * k] = xy[2 * i]; mxy[2 * k + 1] = xy[2 * i + 1];
      if (mc) mc[k] = codes[i];
    }
    matches = { idx, xy: mxy, codes: mc };
    if (g) upload(g, "matches", mxy, mc);
    requestDraw();
  }

  function runSearch(q) {
    if (!q) {
      matches = null; found.textContent = ""; delete root.dataset.matches;
      queued.search = null;
      requestDraw();
      return;
    }
    if (pending.search && !offline) { queued.search = q; return; }
    found.textContent = "searching…";
    ask("search", { q });
  }

  let searchTimer = 0;
  const onSearch = () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => runSearch(search.value.trim()), 200); };
  search.addEventListener("input", onSearch);
  search.addEventListener("keydown", (e) => e.stopPropagation()); // keep JupyterLab's shortcuts out of the box

  // -- pointer: hover, click, drag to pan, wheel to zoom ---------------------------------------
  let drag = null;
  const local = (e) => { const r = overlay.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  overlay.addEventListener("pointerdown", (e) => {
    const [x, y] = local(e);
    drag = { x, y, cx: view.cx, cy: view.cy, moved: false };
    overlay.setPointerCapture(e.pointerId);
  });
  overlay.addEventListener("pointermove", (e) => {
    const [x, y] = local(e);
    if (drag) {
      const dx = x - drag.x, dy = y - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        view.cx = drag.cx - dx / (innerW() * view.scale);
        view.cy = drag.cy + dy / (innerH() * view.scale);
        setHover(-1, 0);
        moveView();
        return;
      }
    }
    setHover(pick(x, y), performance.now());
  });
  overlay.addEventListener("pointerup", (e) => {
    const [x, y] = local(e);
    const wasDrag = drag && drag.moved;
    drag = null;
    if (wasDrag) return; // the settle timer redraws
    const i = pick(x, y);
    if (i >= 0) select(i);
  });
  overlay.addEventListener("pointerleave", () => { if (!drag) setHover(-1, 0); });
  overlay.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [x, y] = local(e);
    const u = view.cx + ((x - PAD) / innerW() - 0.5) / view.scale;
    const v = view.cy + (0.5 - (y - PAD) / innerH()) / view.scale;
    const f = Math.exp(-e.deltaY * 0.0015);
    view.scale = Math.max(0.5, Math.min(2000, view.scale * f));
    view.cx = u - ((x - PAD) / innerW() - 0.5) / view.scale; // keep the point under the mouse still
    view.cy = v - (0.5 - (y - PAD) / innerH()) / view.scale;
    setHover(-1, 0);
    moveView();
  }, { passive: false });
  const resetView = () => { view = { cx: 0.5, cy: 0.5, scale: 1 }; requestDraw(); };
  overlay.addEventListener("dblclick", resetView);
  reset.addEventListener("click", resetView);

  // hooks for tests and the bench: where point i is on screen, which point is at (x, y)
  root.__explorer = {
    screenOf(i) { const r = overlay.getBoundingClientRect(); return { x: r.left + screenX(xy[2 * i] / 65535), y: r.top + screenY(xy[2 * i + 1] / 65535) }; },
    pick(clientX, clientY) { const r = overlay.getBoundingClientRect(); return pick(clientX - r.left, clientY - r.top); },
    view: () => ({ ...view }),
    bytes: () => [xy, codes, grid && grid.start, grid && grid.items, matches && matches.xy]
      .reduce((sum, a) => sum + (a ? a.byteLength : 0), 0),
    drawNow: () => drawNow(),
  };

  const reload = () => { load(); neighbours = []; drawNow(); showSide(model.get("selected"), null); };
  const retitle = () => { title.textContent = model.get("title"); };
  const resize = () => { setup(); drawNow(); };
  const listeners = [["msg:custom", onMessage], ["change:xy", reload], ["change:codes", reload],
    ["change:title", retitle], ["change:selected", onSelectedFromKernel], ["change:width change:height", resize]];
  for (const [event, fn] of listeners) model.on(event, fn);
  setup();
  load();
  drawNow();
  const sel0 = model.get("selected");
  if (sel0 >= 0 && sel0 < n) select(sel0); else showSide(-1, null);
  return () => {
    for (const [event, fn] of listeners) model.off(event, fn);
    if (frame) cancelAnimationFrame(frame);
    clearTimeout(settle);
    if (g) { const lose = g.gl.getExtension("WEBGL_lose_context"); if (lose) lose.loseContext(); }
  };
}

export default { render };
