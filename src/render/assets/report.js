"use strict";
// Draws the head view, the model view and the neuron view from the page's JSON data. User
// text (token labels) only ever goes through textContent or canvas fillText.
(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const T = data.labels.length;
  const D = data.dHead;
  const SCALE = Math.pow(10, data.decimals);
  const NOT_A_NUMBER = data.notANumber;
  const state = { layer: 0, head: 0, heads: [0], hover: null, cell: null, query: T - 1 };
  const SVG = "http://www.w3.org/2000/svg";
  const layerSelect = document.getElementById("layer");
  const headSelect = document.getElementById("head");
  const headView = document.getElementById("head-view");
  const matrix = document.getElementById("matrix");
  const info = document.getElementById("hover-info");

  // base64 → bytes; every browser this page targets is little-endian, as the data is.
  function bytes(b64) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
    const s = atob(b64);
    const a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }
  const attn = new Uint16Array(bytes(data.attn).buffer);
  // null when the page holds no q and k (report --neuron-view).
  const qs = data.q === null ? null : new Float32Array(bytes(data.q).buffer);
  const ks = data.k === null ? null : new Float32Array(bytes(data.k).buffer);
  const triangle = (T * (T + 1)) / 2;

  // The stored value of query i attending to key j: round(p × 10^decimals), NOT_A_NUMBER
  // where the model computed none; -1 where the key is in the future (masked).
  function stored(l, h, i, j) {
    if (j > i) return -1;
    return attn[(l * data.heads + h) * triangle + (i * (i + 1)) / 2 + j];
  }
  // As a probability: null where masked, NaN where not a number.
  function weight(l, h, i, j) {
    const v = stored(l, h, i, j);
    return v < 0 ? null : v === NOT_A_NUMBER ? NaN : v / SCALE;
  }
  function vector(all, l, h, i) {
    const at = ((l * data.heads + h) * T + i) * D;
    return all.subarray(at, at + D);
  }
  const fixed = (v) => (Number.isFinite(v) ? v.toFixed(4) : "not a number");

  // A colour map (the stops of matplotlib's Blues or RdBu_r) at x in 0..1, as [r, g, b].
  function ramp(stops, x) {
    const y = Math.min(Math.max(x, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(y), stops.length - 2);
    const f = y - i;
    return [0, 1, 2].map((k) => Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f));
  }
  const css = (c) => "rgb(" + c.join(",") + ")";
  // Blues of every stored probability, computed once.
  const BLUE = [];
  for (let v = 0; v <= SCALE; v++) BLUE.push(ramp(data.blues, v / SCALE));
  const MASK_BG = [242, 242, 242], MASK_LINE = [192, 192, 192], NAN = [214, 39, 40];
  // Overlaid heads get matplotlib's tab10 then two more, distinct on white.
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
  const headColour = (h) => PALETTE[h % PALETTE.length];

  // One head's map on a canvas of any size: each pixel is the largest probability of the
  // cells it covers (so a one-cell diagonal survives in a small thumbnail), hatched where
  // every covered key is in the future, red where a value is not a number.
  function drawMap(canvas, l, h) {
    const S = canvas.width;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(S, S);
    const px = img.data;
    const lo = (p) => Math.floor((p * T) / S);
    const hi = (p) => Math.max(lo(p) + 1, Math.floor(((p + 1) * T) / S));
    for (let y = 0; y < S; y++) {
      const [i0, i1] = [lo(y), hi(y)];
      for (let x = 0; x < S; x++) {
        const [j0, j1] = [lo(x), hi(x)];
        let best = -1;
        for (let i = i0; i < i1; i++) {
          for (let j = j0; j < Math.min(j1, i + 1); j++) {
            const v = stored(l, h, i, j);
            if (v === NOT_A_NUMBER || v > best) best = v;
            if (v === NOT_A_NUMBER) break;
          }
        }
        const c = best < 0 ? ((x + y) % 6 === 0 ? MASK_LINE : MASK_BG)
          : best === NOT_A_NUMBER ? NAN : BLUE[best];
        const o = (y * S + x) * 4;
        px[o] = c[0];
        px[o + 1] = c[1];
        px[o + 2] = c[2];
        px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  function el(name, attrs) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  // The head view's labels are made once; hovering redraws only the lines, so the element
  // under the pointer is never replaced (which would fire mouseleave and flicker).
  const rowH = 24, width = 480, leftX = 170, rightX = width - 170;
  const rowY = (i) => 40 + i * rowH;
  const title = el("text", { x: 4, y: 12, "font-size": 11, fill: "#555" });
  const lines = el("g", { class: "lines" });
  const highlight = el("g", { class: "highlight" });
  const tokenTexts = [];

  function buildHeadView() {
    headView.setAttribute("width", width);
    headView.setAttribute("height", T * rowH + 40);
    headView.setAttribute("viewBox", "0 0 " + width + " " + (T * rowH + 40));
    headView.appendChild(title);
    headView.appendChild(lines);
    headView.appendChild(highlight);
    for (let i = 0; i < T; i++) {
      for (const side of ["q", "k"]) {
        const t = el("text", {
          x: side === "q" ? leftX : rightX, y: rowY(i),
          "text-anchor": side === "q" ? "end" : "start",
        });
        t.textContent = data.labels[i];
        t.dataset.side = side;
        t.dataset.i = i;
        t.addEventListener("mouseenter", () => hover({ side, i }));
        t.addEventListener("mouseleave", () => hover(null));
        headView.appendChild(t);
        tokenTexts.push(t);
      }
    }
  }

  function line(i, j, attrs) {
    const e = el("line", Object.assign({
      x1: leftX + 6, y1: rowY(i) - 4, x2: rightX - 6, y2: rowY(j) - 4,
    }, attrs));
    e.dataset.q = i;
    e.dataset.k = j;
    return e;
  }

  // Lines of every overlaid head, each in its colour, darker for more attention. A hovered
  // token's lines are <line> elements of their own; the whole head's thousands of lines are
  // one <path> per step of opacity, which a browser draws many times faster.
  function drawHeadView() {
    headView.dataset.layer = state.layer;
    headView.dataset.head = state.head;
    headView.dataset.heads = state.heads.join(",");
    title.textContent = "layer " + state.layer + " · head" + (state.heads.length > 1 ? "s " : " ") +
      state.heads.join(", ") + " · queries → keys";
    const hv = state.hover;
    const frag = document.createDocumentFragment();
    const [x1, x2] = [leftX + 6, rightX - 6];
    let count = 0;
    for (const h of state.heads) {
      const steps = new Map();
      for (let i = 0; i < T; i++) {
        if (hv && hv.side === "q" && hv.i !== i) continue;
        for (let j = 0; j <= i; j++) {
          if (hv && hv.side === "k" && hv.i !== j) continue;
          const w = weight(state.layer, h, i, j);
          if (!(w >= 0.005)) continue;
          count++;
          const attrs = { stroke: headColour(h), "stroke-width": 2 };
          if (hv) {
            attrs["stroke-opacity"] = Math.max(w, 0.04).toFixed(3);
            const e = line(i, j, attrs);
            e.dataset.head = h;
            frag.appendChild(e);
          } else {
            const o = Math.max(Math.round(w * 40) / 40, 0.04).toFixed(3);
            steps.set(o, (steps.get(o) || "") + "M" + x1 + " " + (rowY(i) - 4) + "L" + x2 + " " + (rowY(j) - 4));
          }
        }
      }
      for (const [o, d] of steps) {
        const e = el("path", { d, stroke: headColour(h), "stroke-width": 2, "stroke-opacity": o, fill: "none" });
        e.dataset.head = h;
        frag.appendChild(e);
      }
    }
    lines.replaceChildren(frag);
    lines.dataset.count = count;
    for (const t of tokenTexts) {
      t.classList.toggle("active", !!hv && hv.side === t.dataset.side && hv.i === +t.dataset.i);
    }
  }

  // The line of the matrix cell under the pointer, drawn over the others.
  function drawHighlight() {
    const c = state.cell;
    highlight.replaceChildren();
    if (c && c.j <= c.i) highlight.appendChild(line(c.i, c.j, { stroke: "#e6550d", "stroke-width": 3 }));
  }

  function hover(h) {
    state.hover = h;
    if (h === null) {
      info.textContent = "";
    } else if (h.side === "q") {
      const top = [];
      for (let j = 0; j <= h.i; j++) top.push([weight(state.layer, state.head, h.i, j), j]);
      top.sort((a, b) => b[0] - a[0]);
      info.textContent = data.labels[h.i] + " attends most to " +
        top.slice(0, 3).map(([w, j]) => data.labels[j] + " " + w.toFixed(3)).join(", ");
    } else {
      info.textContent = "keys: " + data.labels[h.i] + " (position " + h.i + ")";
    }
    drawHeadView();
  }

  function drawToggles() {
    for (const b of document.querySelectorAll("#overlay button")) {
      b.setAttribute("aria-pressed", String(state.heads.includes(+b.dataset.head)));
    }
  }

  function select(l, h) {
    state.layer = l;
    state.head = h;
    state.heads = [h];
    layerSelect.value = String(l);
    headSelect.value = String(h);
    drawToggles();
    drawHeadView();
    drawMap(matrix, l, h);
    for (const c of document.querySelectorAll("#model-view canvas")) {
      c.classList.toggle("selected", +c.dataset.layer === l && +c.dataset.head === h);
    }
    drawNeuron();
  }

  // Adds or removes head h from the head view's overlay; at least one head stays.
  function toggle(h) {
    const on = state.heads.includes(h);
    if (on && state.heads.length === 1) return;
    state.heads = on ? state.heads.filter((x) => x !== h) : state.heads.concat([h]).sort((a, b) => a - b);
    drawToggles();
    drawHeadView();
  }

  // The cell under the pointer, named in the info line; its line lights up in the head view.
  function pointAt(event) {
    const box = matrix.getBoundingClientRect();
    const j = Math.floor(((event.clientX - box.left) / box.width) * T);
    const i = Math.floor(((event.clientY - box.top) / box.height) * T);
    if (i < 0 || j < 0 || i >= T || j >= T) return;
    const w = weight(state.layer, state.head, i, j);
    info.textContent = "query " + i + " " + data.labels[i] + " → key " + j + " " + data.labels[j] +
      ": " + (w === null ? "masked (future)" : fixed(w));
    if (!state.cell || state.cell.i !== i || state.cell.j !== j) {
      state.cell = { i, j };
      drawHighlight();
    }
  }

  // Token labels beside the matrix (its rows, the queries) and above it (its columns, the
  // keys): every token while they are 9 px apart, else every n-th. Text goes in by
  // textContent only.
  function labelMatrix() {
    const S = matrix.height;
    const step = Math.max(1, Math.ceil((9 * T) / S));
    const frame = document.createElement("div");
    frame.className = "matrix-frame";
    matrix.parentNode.insertBefore(frame, matrix);
    const rowsBox = document.createElement("div"), colsBox = document.createElement("div");
    rowsBox.className = "matrix-rows";
    colsBox.className = "matrix-cols";
    for (let i = 0; i < T; i += step) {
      const at = ((i + 0.5) * S) / T + "px";
      const r = document.createElement("span"), c = document.createElement("span");
      r.textContent = c.textContent = data.labels[i];
      r.style.top = at;
      c.style.left = at;
      rowsBox.appendChild(r);
      colsBox.appendChild(c);
    }
    frame.append(document.createElement("div"), colsBox, rowsBox, matrix);
  }

  function buildControls() {
    labelMatrix();
    matrix.addEventListener("mousemove", pointAt);
    matrix.addEventListener("mouseleave", () => {
      info.textContent = "";
      state.cell = null;
      drawHighlight();
    });
    for (let l = 0; l < data.layers; l++) layerSelect.add(new Option(String(l), String(l)));
    for (let h = 0; h < data.heads; h++) headSelect.add(new Option(String(h), String(h)));
    layerSelect.addEventListener("change", () => select(+layerSelect.value, state.head));
    headSelect.addEventListener("change", () => select(state.layer, +headSelect.value));
    const overlay = document.getElementById("overlay");
    for (let h = 0; h < data.heads; h++) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = String(h);
      b.dataset.head = h;
      b.title = "overlay head " + h + " in the head view";
      b.style.setProperty("--head", headColour(h));
      b.addEventListener("click", () => toggle(h));
      overlay.appendChild(b);
    }
    const scale = document.getElementById("scale");
    const stops = data.blues.map((c, k) => css(c) + " " + (100 * k / (data.blues.length - 1)) + "%");
    scale.style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
    scale.title = "0 (left) to 1 (right)";
  }

  // Thumbnails are drawn when they first come into view, so a large page opens at once.
  function buildModelView() {
    const view = document.getElementById("model-view");
    view.style.gridTemplateColumns = "3rem repeat(" + data.heads + ", 68px)";
    view.appendChild(document.createElement("div"));
    for (let h = 0; h < data.heads; h++) {
      const d = document.createElement("div");
      d.className = "axis";
      d.textContent = "head " + h;
      view.appendChild(d);
    }
    const draw = (c) => {
      if (c.dataset.drawn) return;
      drawMap(c, +c.dataset.layer, +c.dataset.head);
      c.dataset.drawn = "true";
    };
    // Whatever has not come into view is drawn a few at a time while the page is idle, so
    // every map is there soon (for printing, or a screenshot) without delaying the start.
    const rest = [];
    const idle = window.requestIdleCallback || ((f) => setTimeout(() => f({ timeRemaining: () => 8 }), 16));
    const drawRest = (deadline) => {
      while (rest.length > 0 && deadline.timeRemaining() > 1) draw(rest.pop());
      if (rest.length > 0) idle(drawRest);
      else document.body.dataset.allDrawn = "true";
    };
    const observer = "IntersectionObserver" in window ? new IntersectionObserver((seen) => {
      for (const e of seen) {
        if (e.isIntersecting) {
          draw(e.target);
          observer.unobserve(e.target);
        }
      }
    }, { rootMargin: "200px" }) : null;
    for (let l = 0; l < data.layers; l++) {
      const d = document.createElement("div");
      d.className = "axis";
      d.textContent = "layer " + l;
      view.appendChild(d);
      for (let h = 0; h < data.heads; h++) {
        const c = document.createElement("canvas");
        c.width = 64;
        c.height = c.width;
        c.dataset.layer = l;
        c.dataset.head = h;
        c.title = "layer " + l + " head " + h;
        c.addEventListener("click", () => {
          draw(c);
          select(l, h);
          document.getElementById("head-section").scrollIntoView({ behavior: "smooth" });
        });
        view.appendChild(c);
        if (observer) observer.observe(c); else draw(c);
        rest.unshift(c);
      }
    }
    idle(drawRest);
  }

  // The neuron view: the chosen query's q, each key's k, q × k element by element, q · k,
  // the score q · k / √d_head and the weight, one row per key; red positive, blue negative.
  const neuron = document.getElementById("neuron-view");
  const neuronInfo = document.getElementById("neuron-info");
  const querySelect = document.getElementById("neuron-query");
  // Cells as wide as the page allows, so the weight column (the point of the view) is in
  // sight without scrolling: q and k strips of d_head cells each, then three numbers.
  const N = { row: 16, label: 120, gap: 18, num: 76 };
  const room = (neuron && neuron.parentElement.clientWidth) || 1000;
  N.cell = Math.max(2, Math.min(24, Math.floor((room - N.label - 8 - 2 * N.gap - 3 * N.num) / (2 * D))));
  N.strip = N.cell * D;
  N.kx = N.label + 8;
  N.qkx = N.kx + N.strip + N.gap;
  N.numx = N.qkx + N.strip + N.gap;
  N.top = 2 * N.row + 8; // header, q row, a gap; then one row per key
  const COLUMNS = ["q · k", "q·k/√d", "weight"];
  let rows = null; // the drawn query's numbers, for hovering

  function neuronRows(l, h, qi) {
    const q = vector(qs, l, h, qi);
    const out = [];
    for (let j = 0; j < T; j++) {
      const k = vector(ks, l, h, j);
      const qk = new Float64Array(D);
      let dot = 0;
      for (let e = 0; e < D; e++) {
        qk[e] = q[e] * k[e];
        dot += qk[e];
      }
      out.push({ k, qk, dot, score: dot / Math.sqrt(D), weight: weight(l, h, qi, j), masked: j > qi });
    }
    return { q, keys: out };
  }

  function drawNeuron() {
    if (!qs) return;
    const qi = state.query;
    rows = neuronRows(state.layer, state.head, qi);
    neuron.dataset.layer = state.layer;
    neuron.dataset.head = state.head;
    neuron.dataset.query = qi;
    // Where the columns are, for whoever drives the page (the browser test).
    neuron.dataset.layout = JSON.stringify({ row: N.row, cell: N.cell, top: N.top, kx: N.kx, qkx: N.qkx, numx: N.numx });
    let kmax = 0, pmax = 0;
    for (const v of rows.q) if (Math.abs(v) > kmax) kmax = Math.abs(v);
    rows.keys.forEach((r, j) => {
      if (r.masked) return;
      for (let e = 0; e < D; e++) {
        if (Math.abs(r.k[e]) > kmax) kmax = Math.abs(r.k[e]);
        if (Math.abs(r.qk[e]) > pmax) pmax = Math.abs(r.qk[e]);
      }
    });
    const w = N.numx + COLUMNS.length * N.num, h = N.top + T * N.row;
    neuron.width = w;
    neuron.height = h;
    const ctx = neuron.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px DejaVu Sans Mono, monospace";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#555";
    ctx.fillText("k (q above)", N.kx, N.row / 2);
    ctx.fillText("q × k", N.qkx, N.row / 2);
    COLUMNS.forEach((c, n) => ctx.fillText(c, N.numx + n * N.num, N.row / 2));
    const strip = (x, y, v, max, masked) => {
      for (let e = 0; e < D; e++) {
        ctx.fillStyle = masked ? "#f2f2f2" : Number.isFinite(v[e]) ?
          css(ramp(data.rdbu, max > 0 ? (v[e] / max + 1) / 2 : 0.5)) : css(NAN);
        ctx.fillRect(x + e * N.cell, y + 1, N.cell, N.row - 2);
      }
    };
    const text = (s, x, y, colour) => {
      ctx.fillStyle = colour || "#1b1b1b";
      ctx.fillText(s, x, y + N.row / 2);
    };
    const right = (s, x, y) => {
      ctx.textAlign = "right";
      text(s, x, y);
      ctx.textAlign = "left";
    };
    right("q: " + data.labels[qi], N.label, N.row);
    strip(N.kx, N.row, rows.q, kmax, false);
    rows.keys.forEach((r, j) => {
      const y = N.top + j * N.row;
      right(data.labels[j], N.label, y);
      strip(N.kx, y, r.k, kmax, r.masked);
      strip(N.qkx, y, r.qk, pmax, r.masked);
      if (r.masked) {
        text("masked (future)", N.numx, y, "#888");
        return;
      }
      text(fixed(r.dot), N.numx, y);
      text(fixed(r.score), N.numx + N.num, y);
      const wv = Number.isNaN(r.weight) ? 0 : r.weight;
      // A bar as in the tables: pale enough for the number on it.
      ctx.globalAlpha = 0.45;
      ctx.fillStyle = css(BLUE[Math.round(wv * SCALE)]);
      ctx.fillRect(N.numx + 2 * N.num, y + 2, (N.num - 8) * wv, N.row - 4);
      ctx.globalAlpha = 1;
      text(fixed(r.weight), N.numx + 2 * N.num, y);
    });
  }

  // What the cell under the pointer holds.
  function neuronAt(event) {
    const box = neuron.getBoundingClientRect();
    const x = (event.clientX - box.left) * (neuron.width / box.width);
    const y = (event.clientY - box.top) * (neuron.height / box.height);
    const e = Math.floor((x >= N.qkx ? x - N.qkx : x - N.kx) / N.cell);
    const inStrip = x >= N.kx && e >= 0 && e < D && (x < N.kx + N.strip || (x >= N.qkx && x < N.qkx + N.strip));
    if (y >= N.row && y < 2 * N.row) {
      neuronInfo.textContent = inStrip && x < N.qkx ? "q[" + e + "] = " + fixed(rows.q[e]) : "";
      return;
    }
    const j = Math.floor((y - N.top) / N.row);
    if (j < 0 || j >= T) {
      neuronInfo.textContent = "";
      return;
    }
    const r = rows.keys[j];
    const key = "key " + j + " " + data.labels[j];
    if (r.masked) {
      neuronInfo.textContent = key + ": masked (future)";
    } else if (inStrip && x < N.qkx) {
      neuronInfo.textContent = key + " · k[" + e + "] = " + fixed(r.k[e]);
    } else if (inStrip) {
      neuronInfo.textContent = key + " · q[" + e + "] × k[" + e + "] = " + fixed(rows.q[e]) + " × " +
        fixed(r.k[e]) + " = " + fixed(r.qk[e]);
    } else {
      neuronInfo.textContent = key + " · q · k = " + fixed(r.dot) + " · q·k/√d = " + fixed(r.score) +
        " · weight = " + fixed(r.weight);
    }
  }

  function buildNeuron() {
    if (!qs) return;
    for (let i = 0; i < T; i++) querySelect.add(new Option(i + " " + data.labels[i], String(i)));
    querySelect.value = String(state.query);
    querySelect.addEventListener("change", () => {
      state.query = +querySelect.value;
      drawNeuron();
    });
    neuron.addEventListener("mousemove", neuronAt);
    neuron.addEventListener("mouseleave", () => { neuronInfo.textContent = ""; });
  }

  buildControls();
  buildHeadView();
  buildNeuron();
  buildModelView();
  // A link may name what to show: #L1H0,2 opens layer 1 with heads 0 and 2 overlaid.
  function followLink() {
    const asked = /^#L(\d+)H(\d+(?:,\d+)*)$/.exec(location.hash);
    const heads = asked ? asked[2].split(",").map(Number).filter((h) => h < data.heads) : [];
    if (!asked || +asked[1] >= data.layers || heads.length === 0) return false;
    select(+asked[1], heads[0]);
    for (const h of heads.slice(1)) if (!state.heads.includes(h)) toggle(h);
    return true;
  }
  if (!followLink()) select(0, 0);
  window.addEventListener("hashchange", followLink);
  document.body.dataset.ready = "true";
  document.body.dataset.drawnAtReady = String(document.querySelectorAll("#model-view canvas[data-drawn]").length);
  document.body.dataset.readyMs = String(Math.round(performance.now()));
})();
