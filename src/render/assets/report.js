"use strict";
// Draws the head view and the model view from the page's JSON data. User text (token labels)
// only ever goes through textContent.
(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const T = data.labels.length;
  const state = { layer: 0, head: 0, hover: null };
  const SVG = "http://www.w3.org/2000/svg";
  const layerSelect = document.getElementById("layer");
  const headSelect = document.getElementById("head");
  const headView = document.getElementById("head-view");
  const matrix = document.getElementById("matrix");
  const info = document.getElementById("hover-info");

  // Matplotlib's Blues, the same stops the terminal and SVG renderers use.
  function colour(v) {
    const stops = data.blues;
    const x = Math.min(Math.max(v, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2);
    const f = x - i;
    const c = [0, 1, 2].map((k) => Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f));
    return "rgb(" + c.join(",") + ")";
  }
  // Probability of query i attending to key j; null where the key is in the future; NaN
  // where the model computed no number (the data holds "NaN" or "Infinity" strings there).
  function weight(l, h, i, j) {
    if (j > i) return null;
    const w = data.attn[l][h][i][j];
    return typeof w === "number" ? w : NaN;
  }

  function hatch(ctx, x, y, s) {
    ctx.fillStyle = "#f2f2f2";
    ctx.fillRect(x, y, s, s);
    if (s >= 4) {
      ctx.strokeStyle = "#c0c0c0";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, y + s);
      ctx.lineTo(x + s, y);
      ctx.stroke();
    }
  }

  function drawMap(canvas, l, h) {
    const ctx = canvas.getContext("2d");
    const s = canvas.width / T;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        const w = weight(l, h, i, j);
        if (w === null) {
          hatch(ctx, j * s, i * s, s);
        } else if (Number.isNaN(w)) {
          ctx.fillStyle = "#d62728";
          ctx.fillRect(j * s, i * s, Math.ceil(s), Math.ceil(s));
        } else {
          ctx.fillStyle = colour(w);
          ctx.fillRect(j * s, i * s, Math.ceil(s), Math.ceil(s));
        }
      }
    }
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
  const tokenTexts = [];

  function buildHeadView() {
    headView.setAttribute("width", width);
    headView.setAttribute("height", T * rowH + 40);
    headView.setAttribute("viewBox", "0 0 " + width + " " + (T * rowH + 40));
    headView.appendChild(title);
    headView.appendChild(lines);
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

  function drawHeadView() {
    headView.dataset.layer = state.layer;
    headView.dataset.head = state.head;
    title.textContent = "layer " + state.layer + " · head " + state.head + " · queries → keys";
    while (lines.firstChild) lines.removeChild(lines.firstChild);
    const hv = state.hover;
    for (let i = 0; i < T; i++) {
      for (let j = 0; j <= i; j++) {
        if (hv && ((hv.side === "q" && hv.i !== i) || (hv.side === "k" && hv.i !== j))) continue;
        const w = weight(state.layer, state.head, i, j);
        if (!(w >= 0.005)) continue;
        const line = el("line", {
          x1: leftX + 6, y1: rowY(i) - 4, x2: rightX - 6, y2: rowY(j) - 4,
          stroke: "#2171b5", "stroke-width": 2, "stroke-opacity": Math.max(w, 0.04).toFixed(3),
        });
        line.dataset.q = i;
        line.dataset.k = j;
        lines.appendChild(line);
      }
    }
    for (const t of tokenTexts) {
      t.classList.toggle("active", !!hv && hv.side === t.dataset.side && hv.i === +t.dataset.i);
    }
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

  function select(l, h) {
    state.layer = l;
    state.head = h;
    layerSelect.value = String(l);
    headSelect.value = String(h);
    drawHeadView();
    drawMap(matrix, l, h);
    for (const c of document.querySelectorAll("#model-view canvas")) {
      c.classList.toggle("selected", +c.dataset.layer === l && +c.dataset.head === h);
    }
  }

  // The cell under the pointer, named in the info line.
  function pointAt(event) {
    const box = matrix.getBoundingClientRect();
    const j = Math.floor(((event.clientX - box.left) / box.width) * T);
    const i = Math.floor(((event.clientY - box.top) / box.height) * T);
    if (i < 0 || j < 0 || i >= T || j >= T) return;
    const w = weight(state.layer, state.head, i, j);
    info.textContent = "query " + i + " " + data.labels[i] + " → key " + j + " " + data.labels[j] +
      ": " + (w === null ? "masked (future)" : Number.isNaN(w) ? "not a number" : w.toFixed(4));
  }

  function buildControls() {
    matrix.addEventListener("mousemove", pointAt);
    matrix.addEventListener("mouseleave", () => { info.textContent = ""; });
    for (let l = 0; l < data.layers; l++) layerSelect.add(new Option(String(l), String(l)));
    for (let h = 0; h < data.heads; h++) headSelect.add(new Option(String(h), String(h)));
    layerSelect.addEventListener("change", () => select(+layerSelect.value, state.head));
    headSelect.addEventListener("change", () => select(state.layer, +headSelect.value));
    const scale = document.getElementById("scale");
    const stops = data.blues.map((c, k) => "rgb(" + c.join(",") + ") " + (100 * k / (data.blues.length - 1)) + "%");
    scale.style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
    scale.title = "0 (left) to 1 (right)";
  }

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
    const px = Math.max(64, T);
    for (let l = 0; l < data.layers; l++) {
      const d = document.createElement("div");
      d.className = "axis";
      d.textContent = "layer " + l;
      view.appendChild(d);
      for (let h = 0; h < data.heads; h++) {
        const c = document.createElement("canvas");
        c.width = px;
        c.height = px;
        c.dataset.layer = l;
        c.dataset.head = h;
        c.title = "layer " + l + " head " + h;
        drawMap(c, l, h);
        c.addEventListener("click", () => {
          select(l, h);
          document.getElementById("head-section").scrollIntoView({ behavior: "smooth" });
        });
        view.appendChild(c);
      }
    }
  }

  buildControls();
  buildHeadView();
  buildModelView();
  select(0, 0);
  document.body.dataset.ready = "true";
})();
