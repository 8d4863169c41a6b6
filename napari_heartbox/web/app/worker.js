// Module Web Worker that owns the whole pipeline, so the page stays responsive:
// File objects → ArrayBuffers → dicom-parser headers → series/sort/geometry →
// HU int16 slices in chunks → onnxruntime-web (wasm) → prob [Z,64,64] →
// post-processing (postprocess.js) → heartbox.sector/1 JSON (sector.js).
// Only the sector, the timings, the warnings and small preview images are
// posted back. Also runs the speed benchmark (speed.html).
//
// Messages in:  {type:'run', id, files|volume, options} | {type:'bench', id, ...}
// Messages out: {type:'progress', id, phase, done, total} | {type:'result', id, ...}
//               | {type:'bench-point', id, ...} | {type:'error', id, message}

import * as ort from './vendor/ort/ort.wasm.min.mjs';
import { parseHeader, assembleSeries, sliceToHU, orientSlice, DicomError } from './dicom.js';
import { sectorFromProb, CELLS } from './postprocess.js';
import { sectorToDict } from './sector.js';

const CONFIG_URL = new URL('./heartbox.config.json', import.meta.url);
let configPromise = null;
let sessionPromise = null;
let threadsUsed = null;

function now() { return performance.now(); }

async function loadConfig() {
  if (!configPromise) {
    configPromise = fetch(CONFIG_URL).then((r) => {
      if (!r.ok) throw new Error(`cannot load ${CONFIG_URL.pathname} (HTTP ${r.status})`);
      return r.json();
    });
  }
  return configPromise;
}

async function hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** One InferenceSession per worker; the thread count is fixed at the first call. */
async function getSession(numThreads) {
  if (!sessionPromise) {
    sessionPromise = (async () => {
      const t0 = now();
      const config = await loadConfig();
      ort.env.wasm.wasmPaths = new URL('./vendor/ort/', import.meta.url).href;
      const want = numThreads || 1;
      ort.env.wasm.numThreads = self.crossOriginIsolated ? want : 1;
      threadsUsed = ort.env.wasm.numThreads;
      const resp = await fetch(new URL(config.model.file, CONFIG_URL));
      if (!resp.ok) throw new Error(`cannot load the model ${config.model.file} (HTTP ${resp.status})`);
      const bytes = await resp.arrayBuffer();
      const sha = await hex(bytes);
      if (sha !== config.model.sha256) {
        throw new Error(`${config.model.file} does not match heartbox.config.json (SHA-256 ${sha.slice(0, 12)}...)`);
      }
      const session = await ort.InferenceSession.create(new Uint8Array(bytes), {
        executionProviders: ['wasm'],
        graphOptimizationLevel: 'all',
      });
      return { session, config, initMs: now() - t0 };
    })();
    sessionPromise.catch(() => { sessionPromise = null; });
  }
  return sessionPromise;
}

async function runChunk(session, config, data, n, H, W) {
  const input = new ort.Tensor('int16', data.subarray(0, n * H * W), [n, H, W]);
  const out = await session.run({ [config.model.input]: input });
  const prob = out[config.model.output];
  const values = prob.data;
  if (prob.dims[0] !== n || prob.dims[1] !== CELLS || prob.dims[2] !== CELLS) {
    throw new Error(`model output has shape [${prob.dims}], expected [${n},${CELLS},${CELLS}]`);
  }
  const copy = Float32Array.from(values);
  prob.dispose?.();
  return copy;
}

// point-sampled preview volume, at most `size` pixels in-plane (for the page's views)
function previewStride(H, W, size) { return Math.max(1, Math.ceil(Math.max(H, W) / size)); }

async function readFiles(files, id) {
  const out = new Array(files.length);
  let done = 0;
  const BATCH = 64;
  for (let i = 0; i < files.length; i += BATCH) {
    const part = files.slice(i, i + BATCH);
    const bufs = await Promise.all(part.map((f) => f.arrayBuffer()));
    bufs.forEach((b, j) => { out[i + j] = b; });
    done += part.length;
    postMessage({ type: 'progress', id, phase: 'read', done, total: files.length });
  }
  return out;
}

async function run(msg) {
  const { id, options = {} } = msg;
  const timings = {};
  const tStart = now();
  const { session, config, initMs } = await getSession(options.numThreads);
  timings.init_ms = initMs;
  timings.threads = threadsUsed;
  let shape, spacing, affine, info, warnings, getSlice;
  let clippedSlices = 0;
  if (msg.volume) {
    // a volume given directly: {hu: Int16Array (z,y,x), shape, spacing, affine?, seriesUid?}
    const v = msg.volume;
    shape = v.shape.map(Number);
    spacing = v.spacing ? v.spacing.map(Number) : [1, 1, 1];
    affine = v.affine || [[0, 0, spacing[2], 0], [0, spacing[1], 0, 0], [spacing[0], 0, 0, 0], [0, 0, 0, 1]];
    info = { series_uid: v.seriesUid ?? null };
    warnings = [];
    const n = shape[1] * shape[2];
    if (!(v.hu instanceof Int16Array) || v.hu.length !== shape[0] * n) {
      throw new DicomError(`volume.hu must be an Int16Array of ${shape.join('x')} values`);
    }
    getSlice = (z, out) => out.set(v.hu.subarray(z * n, (z + 1) * n));
    timings.read_ms = 0;
    timings.parse_ms = 0;
  } else {
    const files = Array.from(msg.files || []);
    const t0 = now();
    const buffers = await readFiles(files, id);
    timings.read_ms = now() - t0;
    const t1 = now();
    const records = buffers.map((b, i) => parseHeader(b, files[i].webkitRelativePath || files[i].name));
    const series = assembleSeries(records);
    ({ shape, spacing, affine, info, warnings } = series);
    const { slices, sourceOf, orient } = series;
    const identity = !orient.transpose && !orient.flipY && !orient.flipX;
    const scratch = identity ? null : new Int16Array(slices[0].rows * slices[0].cols);
    // output slice z is filled from slices[sourceOf[z]] (gaps repeat a neighbour)
    const uses = new Int32Array(slices.length);
    for (const k of sourceOf) uses[k] += 1;
    getSlice = (z, out) => {
      const r = slices[sourceOf[z]];
      const target = identity ? out : scratch;
      if (sliceToHU(r, target)) clippedSlices += 1;
      if (!identity) orientSlice(scratch, r.rows, r.cols, orient, out);
      if (--uses[sourceOf[z]] === 0) r.buffer = null; // release the file's bytes
    };
    timings.parse_ms = now() - t1;
  }
  const [Z, H, W] = shape;
  // preprocess + inference, chunked so the wasm heap stays bounded
  const t2 = now();
  const chunk = Math.max(1, options.chunkSlices || config.runtime?.chunk_slices || 32);
  const prob = new Float32Array(Z * CELLS * CELLS);
  const data = new Int16Array(chunk * H * W);
  const stride = previewStride(H, W, options.previewSize || 160);
  const pY = Math.ceil(H / stride);
  const pX = Math.ceil(W / stride);
  const preview = options.previews === false ? null : new Int16Array(Z * pY * pX);
  let fillMs = 0;
  for (let z0 = 0; z0 < Z; z0 += chunk) {
    const n = Math.min(chunk, Z - z0);
    const tf = now();
    for (let k = 0; k < n; k++) {
      const sl = data.subarray(k * H * W, (k + 1) * H * W);
      getSlice(z0 + k, sl);
      if (preview) {
        const base = (z0 + k) * pY * pX;
        for (let yy = 0; yy < pY; yy++) {
          const row = yy * stride * W;
          for (let xx = 0; xx < pX; xx++) preview[base + yy * pX + xx] = sl[row + xx * stride];
        }
      }
    }
    fillMs += now() - tf;
    prob.set(await runChunk(session, config, data, n, H, W), z0 * CELLS * CELLS);
    postMessage({ type: 'progress', id, phase: 'infer', done: z0 + n, total: Z });
  }
  timings.infer_ms = now() - t2;
  if (clippedSlices) warnings.push(`HU values outside the int16 range were clipped in ${clippedSlices} slice(s)`);
  timings.hu_fill_ms = fillMs;
  const t3 = now();
  const box = sectorFromProb(prob, shape, spacing, config.postprocess, options.marginMm);
  const sector = sectorToDict({
    ...box, shape, spacing, affine, seriesUid: info.series_uid, modelSha256: config.model.sha256,
  });
  timings.post_ms = now() - t3;
  timings.total_ms = now() - tStart;
  const result = {
    type: 'result', id, sector, warnings, timings, info,
    features: { cells: box.cells, volume_ml: box.volume_ml, mean_prob: box.mean_prob },
    preview: preview ? { data: preview, shape: [Z, pY, pX], stride } : null,
  };
  postMessage(result, preview ? [preview.buffer] : []);
}

// ------------------------------------------------------------ speed benchmark
function syntheticHU(n, H, W, seed) {
  // deterministic body-like HU pattern: a soft-tissue ellipse in air, with noise
  const a = new Int16Array(n * H * W);
  let s = seed >>> 0 || 1;
  for (let k = 0; k < n; k++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    const u = ((x + 0.5) / W - 0.5) / 0.42;
    const v = ((y + 0.5) / H - 0.5) / 0.32;
    const inside = u * u + v * v < 1;
    a[(k * H + y) * W + x] = (inside ? 40 : -1000) + ((s >>> 24) - 128) / 4;
  }
  return a;
}

async function bench(msg) {
  const { id, batches, size, reps } = msg;
  const { session, config, initMs } = await getSession(msg.numThreads);
  const H = size;
  const W = size;
  const maxB = Math.max(...batches);
  const base = syntheticHU(Math.min(maxB, 8), H, W, 7);
  const points = [];
  for (const b of batches) {
    let data;
    try {
      data = new Int16Array(b * H * W);
      const nb = base.length / (H * W);
      for (let k = 0; k < b; k++) data.set(base.subarray((k % nb) * H * W, ((k % nb) + 1) * H * W), k * H * W);
      await runChunk(session, config, data, b, H, W); // warm-up
      const times = [];
      for (let r = 0; r < reps; r++) {
        const t0 = now();
        await runChunk(session, config, data, b, H, W);
        times.push(now() - t0);
      }
      times.sort((x, y) => x - y);
      const median = times[Math.floor(times.length / 2)];
      const p = { batch: b, ms_per_batch: median, ms_per_frame: median / b, runs_ms: times };
      points.push(p);
      postMessage({ type: 'bench-point', id, threads: threadsUsed, point: p });
    } catch (e) {
      const p = { batch: b, error: String(e && e.message || e) };
      points.push(p);
      postMessage({ type: 'bench-point', id, threads: threadsUsed, point: p });
    }
    data = null;
  }
  postMessage({ type: 'result', id, threads: threadsUsed, init_ms: initMs, size, reps, points });
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  try {
    if (msg.type === 'run') await run(msg);
    else if (msg.type === 'bench') await bench(msg);
    else throw new Error(`unknown message type ${msg.type}`);
  } catch (e) {
    postMessage({ type: 'error', id: msg.id, message: String((e && e.message) || e), user: e instanceof DicomError });
  }
};
