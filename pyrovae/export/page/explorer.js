// The latent explorer: decodes z with the run's exported decoder (model/decoder.onnx) in onnxruntime-web
// and draws the decoder's mean E[x|z]. What it shows comes from explorer.json (written by pyrovae's
// scripts/explore.py). window.pyrovaeExplorer: ready (a promise, settled after the first image is drawn),
// setLatent(z) (a promise, settled once z is drawn), setLabel(k), latent(), pixels() (the decoder's mean
// as the page computed it, floats), drawnBytes() (the image canvas's RGBA bytes).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const api = {};
  window.pyrovaeExplorer = api;
  let spec, session, z, label = 0, mean = null;
  let queued = false, running = null;
  const sliders = new Map(); // dimension -> {input, output}

  function say(text, error) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  function feeds() {
    const f = {[spec.decoder.latent]: new ort.Tensor("float32", Float32Array.from(z), [1, spec.z_dim])};
    const labels = spec.labels;
    if (labels) {
      if (labels.one_hot) {
        const hot = new Float32Array(labels.classes);
        hot[label] = 1;
        f[labels.input] = new ort.Tensor(labels.dtype === "float64" ? "float64" : "float32",
          labels.dtype === "float64" ? Float64Array.from(hot) : hot, [1, labels.classes]);
      } else {
        f[labels.input] = new ort.Tensor("int64", BigInt64Array.from([BigInt(label)]), [1]);
      }
    }
    return f;
  }

  function toBytes(values, offset, n) { // round(255 * clamp(p, 0, 1))
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.round(255 * Math.min(1, Math.max(0, values[offset + i])));
    return out;
  }

  // channel-first bytes (C, H, W) onto a canvas: RGB for 3 channels, else the channels side by side in grey
  function paint(canvas, bytes) {
    const [c, h, w] = spec.image_shape;
    const rgb = c === 3, width = rgb ? w : w * c;
    canvas.width = width;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(width, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < width; x++) {
        const at = 4 * (y * width + x);
        if (rgb) {
          for (let k = 0; k < 3; k++) img.data[at + k] = bytes[k * h * w + y * w + x];
        } else {
          const ch = Math.floor(x / w), v = bytes[ch * h * w + y * w + (x % w)];
          img.data[at] = img.data[at + 1] = img.data[at + 2] = v;
        }
        img.data[at + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  async function decode() {
    const out = await session.run(feeds(), [spec.decoder.output]);
    mean = out[spec.decoder.output].data; // (1, D) float32
    paint($("image"), toBytes(mean, 0, mean.length));
    drawPad();
  }

  // one decoding at a time; a change while one runs is drawn right after it, with the latest z
  function redraw() {
    queued = true;
    if (!running) {
      running = (async () => {
        try {
          while (queued) {
            queued = false;
            await decode();
          }
        } finally {
          running = null;
        }
      })();
    }
    return running;
  }

  function dim(d) { return spec.dims.find((e) => e.index === d); }

  function syncSliders() {
    for (const [d, s] of sliders) {
      s.input.value = z[d];
      s.output.value = z[d].toFixed(2);
    }
  }

  function buildSliders() {
    for (const e of spec.dims.slice(0, spec.sliders)) {
      const row = document.createElement("label");
      row.className = "slider";
      const name = document.createElement("span");
      name.textContent = `z${e.index}` + (e.kl === null ? "" : `  KL ${e.kl.toFixed(2)}`);
      const input = Object.assign(document.createElement("input"),
        {type: "range", min: e.low, max: e.high, step: (e.high - e.low) / 600});
      const output = document.createElement("output");
      input.addEventListener("input", () => {
        z[e.index] = Number(input.value);
        output.value = z[e.index].toFixed(2);
        redraw();
      });
      row.append(name, input, output);
      $("sliders").append(row);
      sliders.set(e.index, {input, output});
    }
  }

  function padDims() { return [Number($("pad-x").value), Number($("pad-y").value)]; }

  function drawPad() {
    const pad = $("pad"), ctx = pad.getContext("2d"), [dx, dy] = padDims(), ex = dim(dx), ey = dim(dy);
    const px = (z[dx] - ex.low) / (ex.high - ex.low) * pad.width;
    const py = (1 - (z[dy] - ey.low) / (ey.high - ey.low)) * pad.height;
    ctx.clearRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = "#ddd";
    for (let k = 1; k < 6; k++) {
      const t = k / 6 * pad.width;
      ctx.beginPath(); ctx.moveTo(t, 0); ctx.lineTo(t, pad.height); ctx.moveTo(0, t); ctx.lineTo(pad.width, t); ctx.stroke();
    }
    ctx.fillStyle = "#d2691e";
    ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.fill();
  }

  function buildPad() {
    for (const id of ["pad-x", "pad-y"]) {
      for (const e of spec.dims) {
        const o = document.createElement("option");
        o.value = e.index;
        o.textContent = `z${e.index}` + (e.kl === null ? "" : ` (KL ${e.kl.toFixed(2)})`);
        $(id).append(o);
      }
      $(id).addEventListener("change", drawPad);
    }
    $("pad-x").value = spec.dims[0].index;
    $("pad-y").value = spec.dims[Math.min(1, spec.dims.length - 1)].index;
    const pad = $("pad");
    const move = (event) => {
      if (event.type === "pointermove" && !(event.buttons & 1)) return;
      const r = pad.getBoundingClientRect(), [dx, dy] = padDims(), ex = dim(dx), ey = dim(dy);
      const u = Math.min(1, Math.max(0, (event.clientX - r.left) / r.width));
      const v = Math.min(1, Math.max(0, 1 - (event.clientY - r.top) / r.height));
      z[dx] = ex.low + u * (ex.high - ex.low);
      z[dy] = ey.low + v * (ey.high - ey.low);
      syncSliders();
      redraw();
    };
    pad.addEventListener("pointerdown", (event) => { pad.setPointerCapture(event.pointerId); move(event); });
    pad.addEventListener("pointermove", move);
  }

  function buildClasses() {
    if (!spec.labels) return;
    $("classes").hidden = false;
    for (let k = 0; k < spec.labels.classes; k++) {
      const o = document.createElement("option");
      o.value = k;
      o.textContent = spec.class_names && spec.class_names[k] !== undefined ? `${k}: ${spec.class_names[k]}` : `${k}`;
      $("class").append(o);
    }
    $("class").addEventListener("change", () => { label = Number($("class").value); redraw(); });
  }

  function buildStrip() {
    const images = spec.test.images;
    if (!images.length) return;
    $("strip-box").hidden = false;
    const [, h, w] = spec.image_shape, scale = Math.max(1, Math.round(56 / Math.max(h, w)));
    images.forEach((item, i) => {
      const canvas = document.createElement("canvas");
      paint(canvas, Uint8Array.from(atob(item.pixels), (ch) => ch.charCodeAt(0)));
      canvas.style.width = `${canvas.width * scale}px`;
      canvas.title = `test row ${item.row}` + (item.label === null ? "" : `, label ${item.label}`);
      canvas.dataset.index = i;
      canvas.addEventListener("click", () => {
        for (const c of $("strip").children) c.classList.toggle("chosen", c === canvas);
        if (spec.labels && item.label !== null) api.setLabel(item.label);
        api.setLatent(item.z);
      });
      $("strip").append(canvas);
    });
  }

  api.setLatent = (values) => {
    if (values.length !== spec.z_dim) throw new Error(`z needs ${spec.z_dim} values, got ${values.length}`);
    z = Float64Array.from(values);
    syncSliders();
    return redraw();
  };
  api.setLabel = (k) => {
    if (!spec.labels || !(k >= 0 && k < spec.labels.classes)) throw new Error(`no class ${k}`);
    label = k;
    $("class").value = k;
    return redraw();
  };
  api.latent = () => Array.from(z);
  api.pixels = () => (mean === null ? null : Array.from(mean));
  api.drawnBytes = () => {
    const c = $("image");
    return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
  };

  async function main() {
    if (location.protocol === "file:") {
      throw new Error("opened as a file: serve this folder (python -m http.server in it) and open http://localhost:8000/");
    }
    const answer = await fetch("explorer.json");
    if (!answer.ok) throw new Error(`explorer.json: HTTP ${answer.status}`);
    spec = await answer.json();
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer, so no cross-origin isolation is needed
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = {mjs: new URL("runtime/ort-wasm-simd-threaded.mjs", location.href).href,
                              wasm: new URL("runtime/ort-wasm-simd-threaded.wasm", location.href).href};
    session = await ort.InferenceSession.create(spec.decoder.file, {executionProviders: ["wasm"]});
    z = Float64Array.from(spec.start);
    $("title").textContent = `: ${spec.title} (${spec.model}, ${spec.likelihood}, z_dim ${spec.z_dim})`;
    const [, h, w] = spec.image_shape;
    $("image").style.width = `${Math.round(280 / Math.max(h, w)) * w * (spec.image_shape[0] === 3 ? 1 : spec.image_shape[0])}px`;
    buildSliders();
    syncSliders();
    buildPad();
    buildClasses();
    buildStrip();
    $("prior").addEventListener("click", () => api.setLatent(spec.dims.slice().sort((a, b) => a.index - b.index).map((e) => e.mean)));
    $("about").textContent = `Run ${spec.run.run_dir}, ${spec.run.checkpoint} (epoch ${spec.run.epoch}). ` +
      `Dimensions ordered ${spec.ranking.startsWith("by ") ? "" : "by "}${spec.ranking}; sliders span the prior mean ` +
      `\u00b1 3 standard deviations. Drawn: ${spec.drawn}. Decoded in the browser by ${spec.runtime} (WebAssembly).`;
    await redraw();
    say(`z starts at ${spec.start_is}. Move the sliders or the pad; the image is decoded as you move.`);
  }

  api.ready = main().catch((error) => {
    say(`error: ${error.message || error}`, true);
    throw error;
  });
})();
