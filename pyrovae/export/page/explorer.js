// The latent explorer: decodes z with the run's exported decoder (model/decoder.onnx) in onnxruntime-web
// and draws the decoder's mean E[x|z]. What it shows comes from explorer.json (written by pyrovae's
// scripts/explore.py). window.pyrovaeExplorer: ready (a promise, settled after the first image is drawn),
// setLatent(z) (a promise, settled once z is drawn; the hvae's z2), setLabel(k) (a class-conditional
// decoder's class), setLower(z1) (the hvae's z1, set by hand), follow(on) (the hvae's z1 follows the
// mean of p(z1|z2)), latent(), label(), lower(), pixels() (the decoder's mean as the page computed it,
// floats), drawnBytes() (the image canvas's RGBA bytes).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const api = {};
  window.pyrovaeExplorer = api;
  let spec, session, priorSession = null, z, z1 = null, follows = true, label = 0, mean = null;
  let queued = false, running = null;
  const sliders = new Map(), lowerSliders = new Map(); // dimension -> {input, output}

  function say(text, error) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  function feeds() {
    const f = {[spec.decoder.latent]: new ort.Tensor("float32", Float32Array.from(z), [1, spec.z_dim])};
    if (spec.lower) f[spec.lower.input] = new ort.Tensor("float32", Float32Array.from(z1), [1, spec.lower.z_dim]);
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

  const toBytes = (v, offset, n) => Uint8Array.from({length: n}, (_, i) => Math.round(255 * Math.min(1, Math.max(0, v[offset + i]))));

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
    if (spec.lower && follows) { // z1 at the mean of p(z1|z2)
      const p = spec.lower.prior, z2 = new ort.Tensor("float32", Float32Array.from(z), [1, spec.z_dim]);
      z1 = Float64Array.from((await priorSession.run({[p.input]: z2}, [p.output]))[p.output].data);
      syncSliders();
    }
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

  const dim = (d) => spec.dims.find((e) => e.index === d);

  function syncSliders() {
    for (const [values, map] of [[z, sliders], [z1, lowerSliders]]) {
      for (const [d, s] of map) {
        s.input.value = values[d];
        s.output.value = values[d].toFixed(2);
      }
    }
    if (spec.lower) $("follow").checked = follows;
  }

  // sliders for the dimensions `dims` of the vector that get() gives, into the element `box`
  function buildSliders(dims, map, box, prefix, get, moved) {
    for (const e of dims) {
      const row = document.createElement("label");
      row.className = "slider";
      const name = document.createElement("span");
      name.textContent = `${prefix}${e.index}` + (e.kl === null ? "" : `  KL ${e.kl.toFixed(2)}`);
      const input = Object.assign(document.createElement("input"),
        {type: "range", min: e.low, max: e.high, step: (e.high - e.low) / 600});
      const output = document.createElement("output");
      input.addEventListener("input", () => {
        get()[e.index] = Number(input.value);
        output.value = get()[e.index].toFixed(2);
        moved();
        redraw();
      });
      row.append(name, input, output);
      box.append(row);
      map.set(e.index, {input, output});
    }
  }

  function buildLower() {
    if (!spec.lower) return;
    $("lower").hidden = false;
    buildSliders(spec.lower.dims.slice(0, spec.sliders), lowerSliders, $("lower-sliders"), "z1.", () => z1,
      () => { follows = false; $("follow").checked = false; });
    $("follow").addEventListener("change", () => api.follow($("follow").checked));
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
        o.textContent = `${spec.latent}${spec.lower ? "." : ""}${e.index}` + (e.kl === null ? "" : ` (KL ${e.kl.toFixed(2)})`);
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
    $("class").value = label;
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
      canvas.title = `test row ${item.row}` + (item.label === null ? "" : `, label ${item.label}`) +
        (item.class === undefined ? "" : `, class ${item.class}`);
      canvas.dataset.index = i;
      canvas.addEventListener("click", () => {
        for (const c of $("strip").children) c.classList.toggle("chosen", c === canvas);
        if (spec.labels && item.class !== undefined) api.setLabel(item.class);
        if (spec.lower) { // the reconstruction: z1 at its posterior mean too
          z1 = Float64Array.from(item.z1);
          follows = false;
        }
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
  api.setLower = (values) => {
    if (!spec.lower || values.length !== spec.lower.z_dim) throw new Error("no lower layer z1 of that size");
    z1 = Float64Array.from(values);
    follows = false;
    syncSliders();
    return redraw();
  };
  api.follow = (on) => {
    if (!spec.lower) throw new Error("no lower layer z1");
    follows = !!on;
    syncSliders();
    return redraw();
  };
  api.latent = () => Array.from(z);
  api.label = () => (spec.labels ? label : null);
  api.lower = () => (z1 === null ? null : Array.from(z1));
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
    if (spec.lower) {
      priorSession = await ort.InferenceSession.create(spec.lower.prior.file, {executionProviders: ["wasm"]});
      z1 = new Float64Array(spec.lower.z_dim);
    }
    z = Float64Array.from(spec.start);
    label = spec.labels ? spec.start_class : 0;
    $("title").textContent = `: ${spec.title} (${spec.model}, ${spec.likelihood}, z_dim ${spec.z_dim})`;
    const [, h, w] = spec.image_shape;
    $("image").style.width = `${Math.round(280 / Math.max(h, w)) * w * (spec.image_shape[0] === 3 ? 1 : spec.image_shape[0])}px`;
    buildSliders(spec.dims.slice(0, spec.sliders), sliders, $("sliders"), spec.lower ? "z2." : "z", () => z, () => {});
    buildLower();
    syncSliders();
    buildPad();
    buildClasses();
    buildStrip();
    $("prior").addEventListener("click", () => {
      follows = true;
      api.setLatent(spec.dims.slice().sort((a, b) => a.index - b.index).map((e) => e.mean));
    });
    if (spec.test.images.length) {
      $("strip-title").textContent = "Test images: click one to set " + (spec.lower ?
        "z2 and z1 to their posterior means (the reconstruction; tick \u201cz1 follows\u201d to let z2 lead again)" :
        "z to its posterior mean") + (spec.labels && spec.test.class ? `, and the class to ${spec.test.class}` : "");
    }
    $("about").textContent = `Run ${spec.run.name}, ${spec.run.checkpoint} (epoch ${spec.run.epoch}). ` +
      `Dimensions ordered ${spec.ranking.startsWith("by ") ? "" : "by "}${spec.ranking}; sliders span the prior mean ` +
      `\u00b1 3 standard deviations. Drawn: ${spec.drawn}. Decoded in the browser by ${spec.runtime} (WebAssembly).`;
    await redraw();
    say(`${spec.lower ? "z2" : "z"} starts at ${spec.start_is}. Move the sliders or the pad` +
      `${spec.labels ? ", or pick a class" : ""}; the image is decoded as you move.`);
  }

  api.ready = main().catch((error) => {
    say(`error: ${error.message || error}`, true);
    throw error;
  });
})();
