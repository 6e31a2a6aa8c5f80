// Diagnostic viewer for one case: lossless 16-bit counts drawn on canvases, window/level in counts,
// linked zoom and pan of the two views, magnifier, invert, and keyboard answers. No external code.
//
// Each view's canvas holds the windowed scan at its own resolution (one canvas pixel per scan pixel);
// CSS scales it to the screen: smooth below 2x, nearest neighbour from 2x. Pan is linked
// anatomically: the posterior view is stored as seen from behind, so its horizontal axis is mirrored.
(function () {
  "use strict";
  const root = document.getElementById("reader");
  if (!root) return;
  const rows = Number(root.dataset.rows), cols = Number(root.dataset.columns);
  const reviewing = root.dataset.mode === "review";
  const viewsBox = document.getElementById("views");
  const loupe = document.getElementById("loupe");
  const readout = document.getElementById("wl"), pixelReadout = document.getElementById("pixel");
  const MAX_SCALE = 16, PRESETS = ["auto", "full", "low"];
  const state = { scale: 1, cx: cols / 2, cy: rows / 2, fit: true, invert: true, low: 0, high: 1, preset: "auto", loupe: false };
  const views = [];
  let auto = 1, peak = 1, pending = false;

  // ---- window/level -------------------------------------------------------------------------
  function percentile(histogram, total, q, from) {
    const target = q * total;
    let seen = 0;
    for (let value = from; value < histogram.length; value++) {
      seen += histogram[value];
      if (seen >= target) return value;
    }
    return histogram.length - 1;
  }

  function autoWindow() {
    // As synthscan.render: 1.15 x the 99th percentile of body pixels (above 5 % of the 99.5th percentile).
    const histogram = new Uint32Array(peak + 1);
    let positive = 0;
    views.forEach(function (view) {
      for (const value of view.counts) { histogram[value]++; if (value > 0) positive++; }
    });
    if (!positive) return 1;
    const p995 = percentile(histogram, positive, 0.995, 1);
    const floor = Math.floor(0.05 * p995) + 1;
    let body = 0;
    for (let value = floor; value <= peak; value++) body += histogram[value];
    return Math.max(1, 1.15 * percentile(histogram, body, 0.99, floor));
  }

  function setPreset(name) {
    state.preset = name;
    state.low = 0;
    state.high = name === "full" ? peak : name === "low" ? Math.max(1, auto / 4) : auto;
    redraw();
  }

  function draw(view) {
    const low = state.low, width = Math.max(state.high - state.low, 1e-6);
    const table = new Uint8ClampedArray(peak + 1);
    for (let value = 0; value <= peak; value++) {
      const grey = Math.round(Math.min(Math.max((value - low) / width, 0), 1) * 255);
      table[value] = state.invert ? 255 - grey : grey;
    }
    const out = view.image.data, counts = view.counts;
    for (let i = 0, j = 0; i < counts.length; i++, j += 4) {
      out[j] = out[j + 1] = out[j + 2] = table[counts[i]];
      out[j + 3] = 255;
    }
    view.context.putImageData(view.image, 0, 0);
  }

  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      views.forEach(draw);
      const width = state.high - state.low, level = (state.high + state.low) / 2;
      readout.textContent = "W " + width.toFixed(1) + "  L " + level.toFixed(1) + "  (" +
        state.low.toFixed(1) + "–" + state.high.toFixed(1) + " counts, " + state.preset + ")";
      document.querySelectorAll("[data-preset]").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.dataset.preset === state.preset));
      });
      document.getElementById("invert").setAttribute("aria-pressed", String(state.invert));
    });
  }

  // ---- zoom and pan -------------------------------------------------------------------------
  function fitScale() {
    return viewsBox.clientHeight / rows;
  }

  function layout() {
    if (state.fit) { state.scale = fitScale(); state.cx = cols / 2; state.cy = rows / 2; }
    const s = state.scale;
    const gap = 8, room = (viewsBox.clientWidth - gap * (views.length + 1)) / views.length;
    views.forEach(function (view) {
      const width = Math.min(Math.ceil(cols * s), Math.floor(room));
      view.element.style.width = width + "px";
      const cx = view.mirrored ? cols - state.cx : state.cx;
      const tx = width / 2 - s * cx, ty = view.element.clientHeight / 2 - s * state.cy;
      view.canvas.style.transform = "translate(" + tx + "px, " + ty + "px) scale(" + s + ")";
      view.canvas.classList.toggle("nearest", s * window.devicePixelRatio >= 2);
      view.tx = tx; view.ty = ty;
    });
  }

  function zoomAt(view, factor, clientX, clientY) {
    const box = view.element.getBoundingClientRect();
    const point = sourcePoint(view, clientX, clientY);
    const scale = Math.min(Math.max(state.scale * factor, fitScale()), MAX_SCALE);
    const ax = view.mirrored ? cols - point.x : point.x;
    const dx = clientX - box.left - box.width / 2, dy = clientY - box.top - box.height / 2;
    state.cx = ax - (view.mirrored ? -dx : dx) / scale;
    state.cy = point.y - dy / scale;
    state.scale = scale;
    state.fit = false;
    layout();
  }

  function zoomCentre(factor) {
    state.scale = Math.min(Math.max(state.scale * factor, fitScale()), MAX_SCALE);
    state.fit = false;
    layout();
  }

  function pan(dx, dy, mirrored) {
    state.cx -= (mirrored ? -dx : dx) / state.scale;
    state.cy -= dy / state.scale;
    state.fit = false;
    layout();
  }

  function sourcePoint(view, clientX, clientY) {
    const box = view.element.getBoundingClientRect();
    return { x: (clientX - box.left - view.tx) / state.scale, y: (clientY - box.top - view.ty) / state.scale };
  }

  function showPixel(view, clientX, clientY) {
    const p = sourcePoint(view, clientX, clientY);
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= cols || y >= rows) { pixelReadout.textContent = "\u00a0"; loupe.hidden = true; return; }
    pixelReadout.textContent = view.name + " (" + x + ", " + y + "): " + view.counts[y * cols + x] + " counts";
    if (!state.loupe) return;
    const size = 25, context = loupe.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.fillStyle = state.invert ? "#fff" : "#000";
    context.fillRect(0, 0, loupe.width, loupe.height);
    context.drawImage(view.canvas, x - (size >> 1), y - (size >> 1), size, size, 0, 0, loupe.width, loupe.height);
    const outer = viewsBox.getBoundingClientRect();
    loupe.style.left = Math.min(clientX - outer.left + 16, outer.width - loupe.width) + "px";
    loupe.style.top = Math.min(Math.max(clientY - outer.top - loupe.height / 2, 0), outer.height - loupe.height) + "px";
    loupe.hidden = false;
  }

  // ---- mouse --------------------------------------------------------------------------------
  function attachMouse(view) {
    let drag = null;
    view.element.addEventListener("contextmenu", function (event) { event.preventDefault(); });
    view.element.addEventListener("mousedown", function (event) {
      event.preventDefault();
      const panning = event.button !== 0 || event.shiftKey;
      drag = { x: event.clientX, y: event.clientY, panning: panning, low: state.low, high: state.high };
    });
    window.addEventListener("mousemove", function (event) {
      if (!drag) return;
      const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      if (drag.panning) {
        pan(dx, dy, view.mirrored);
        drag.x = event.clientX; drag.y = event.clientY;
        return;
      }
      // right: wider window; down: higher level. Steps scale with the window, so both ends stay usable.
      const step = Math.max(drag.high - drag.low, 1) / 200;
      const width = Math.max(1, drag.high - drag.low + dx * step);
      const level = Math.max(0, (drag.high + drag.low) / 2 + dy * step);
      state.low = level - width / 2; state.high = level + width / 2; state.preset = "manual";
      redraw();
    });
    window.addEventListener("mouseup", function () { drag = null; });
    view.element.addEventListener("mousemove", function (event) { showPixel(view, event.clientX, event.clientY); });
    view.element.addEventListener("mouseleave", function () { loupe.hidden = true; });
    view.element.addEventListener("wheel", function (event) {
      event.preventDefault();
      zoomAt(view, event.deltaY < 0 ? 1.25 : 0.8, event.clientX, event.clientY);
    }, { passive: false });
    view.element.addEventListener("dblclick", function () { state.fit = true; layout(); });
  }

  // ---- controls and keys --------------------------------------------------------------------
  document.querySelectorAll("[data-preset]").forEach(function (button) {
    button.addEventListener("click", function () { setPreset(button.dataset.preset); });
  });
  function toggleInvert() { state.invert = !state.invert; redraw(); }
  function toggleLoupe() {
    state.loupe = !state.loupe;
    loupe.hidden = true;
    document.getElementById("loupe-toggle").setAttribute("aria-pressed", String(state.loupe));
  }
  function fit() { state.fit = true; layout(); }
  function oneToOne() { state.scale = 1 / window.devicePixelRatio; state.fit = false; layout(); }
  document.getElementById("invert").addEventListener("click", toggleInvert);
  document.getElementById("loupe-toggle").addEventListener("click", toggleLoupe);
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("one-to-one").addEventListener("click", oneToOne);
  document.getElementById("fullscreen").addEventListener("click", function () {
    if (document.fullscreenElement) document.exitFullscreen(); else document.documentElement.requestFullscreen();
  });
  window.addEventListener("resize", layout);

  const form = document.getElementById("answer");
  function choose(name, value) {
    const input = form && form.querySelector("input[name=" + name + "][value='" + value + "']");
    if (!input) return;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
  function syncGrade() {
    const amyloid = form.querySelector("input[name=diagnosis][value=amyloidosis]").checked;
    form.querySelectorAll("input[name=grade]").forEach(function (radio) {
      radio.required = amyloid;
      radio.disabled = !amyloid;
      if (!amyloid) radio.checked = false;
    });
  }
  if (form) {
    form.addEventListener("change", function (event) { if (event.target.name === "diagnosis") syncGrade(); });
    syncGrade();
  }

  const DIAGNOSIS = { n: "normal", m: "metastasis", a: "amyloidosis" };
  function link(id) { const a = document.getElementById(id); if (a) window.location.href = a.href; }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase(), code = event.code;
    const digit = /^(Digit|Numpad)([0-9])$/.exec(code);
    let handled = true;
    if (event.shiftKey && digit && form && Number(digit[2]) >= 1 && Number(digit[2]) <= 3) {
      choose("diagnosis", "amyloidosis"); choose("grade", digit[2]);
    } else if (digit && !event.shiftKey && digit[2] === "0") fit();
    else if (digit && !event.shiftKey && form && Number(digit[2]) <= 5) choose("confidence", digit[2]);
    else if (key === "r" && form) choose("call", "real");
    else if (key === "s" && form) choose("call", "synthetic");
    else if (DIAGNOSIS[key] && form) choose("diagnosis", DIAGNOSIS[key]);
    else if (key === "f" && form) document.getElementById("flag").checked = !document.getElementById("flag").checked;
    else if (key === "f" && reviewing) document.getElementById("flag-form").requestSubmit();
    else if (key === "enter" && form) { if (event.target.tagName !== "BUTTON") form.requestSubmit(); else handled = false; }
    else if (key === "enter" && reviewing) link("next");
    else if (key === "b") link("previous");
    else if (key === "w") setPreset(PRESETS[(PRESETS.indexOf(state.preset) + 1) % PRESETS.length]);
    else if (key === "i") toggleInvert();
    else if (key === "z") oneToOne();
    else if (key === "l") toggleLoupe();
    else if (key === "+" || key === "=") zoomCentre(1.25);
    else if (key === "-") zoomCentre(0.8);
    else if (key.startsWith("arrow")) {
      const step = 40;
      pan(key === "arrowleft" ? step : key === "arrowright" ? -step : 0,
        key === "arrowup" ? step : key === "arrowdown" ? -step : 0, false);
    } else handled = false;
    if (handled) event.preventDefault();
  });

  // ---- load ---------------------------------------------------------------------------------
  fetch(root.dataset.counts, { credentials: "same-origin", cache: "no-store" })
    .then(function (response) {
      if (!response.ok) throw new Error("the scan could not be loaded (HTTP " + response.status + ")");
      return response.arrayBuffer();
    })
    .then(function (buffer) {
      const data = new DataView(buffer), n = rows * cols;
      if (buffer.byteLength !== 2 * n * document.querySelectorAll(".viewport").length) {
        throw new Error("the scan has an unexpected size; reload the page");
      }
      document.querySelectorAll(".viewport").forEach(function (element, index) {
        const counts = new Uint16Array(n);
        for (let i = 0; i < n; i++) {
          counts[i] = data.getUint16(2 * (index * n + i), true);
          if (counts[i] > peak) peak = counts[i];
        }
        const canvas = element.querySelector("canvas");
        canvas.style.width = cols + "px";
        canvas.style.height = rows + "px";
        const context = canvas.getContext("2d");
        const view = {
          name: element.dataset.view, element: element, canvas: canvas, context: context, counts: counts,
          image: context.createImageData(cols, rows), mirrored: element.dataset.view === "posterior", tx: 0, ty: 0,
        };
        views.push(view);
        attachMouse(view);
      });
      auto = autoWindow();
      setPreset("auto");
      layout();
      requestAnimationFrame(function () { root.dataset.ready = "true"; });
    })
    .catch(function (error) {
      const message = document.getElementById("load-error");
      message.textContent = String(error.message || error);
      message.hidden = false;
    });
})();
