// Module Web Worker that owns the whole pipeline, so the page stays responsive:
// File objects → reader.js (a second worker: dicom-parser headers → series/sort/
// geometry → HU int16 slices in chunks) → onnxruntime-web (wasm) → prob [Z,64,64] →
// post-processing (postprocess.js) → heartbox.sector/1 JSON (sector.js).
// Only the sector, the timings, the warnings and small preview images are
// posted back. Also runs the speed benchmark (speed.html).
//
// Messages in:  {type:'run', id, files|volume, options} | {type:'bench', id, ...}
// Messages out: {type:'progress', id, phase, done, total} | {type:'result', id, ...}
//               | {type:'bench-point', id, ...} | {type:'error', id, message}

import * as ort from './vendor/ort/ort.wasm.min.mjs';
import { DicomError, lazySlice } from './dicom.js';
import { loadCodec, decodeFrame } from './codecs.js';
import { sectorFromProb, CELLS } from './postprocess.js';
import { sectorToDict } from './sector.js';
import { SliceScheduler, gatherRows, zStep, coarseReads } from './zschedule.js';
import { DecodePool } from './decodepool.js';

const CONFIG_URL = new URL('./heartbox.config.json', import.meta.url);
let configPromise = null;
let sessionPromise = null;
let threadsUsed = null;
let decodePool = null; // decoder workers, started by the first compressed series and kept

function now() { return performance.now(); }

// as the Python propose path words it (napari_heartbox/io/lazy.py)
function clipWarning(n) {
  return n ? [`HU values outside the int16 range were clipped in ${n} of the slice(s) read`] : [];
}

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

// One model run: n H×W slices and m context rows (positions in them of the
// slices z-k, z, z+k) → m×64×64 probabilities of the rows' centre slices.
async function runChunk(session, config, data, n, H, W, context, m, checkShape = true) {
  const feeds = { [config.model.input]: new ort.Tensor('int16', data.subarray(0, n * H * W), [n, H, W]) };
  if (config.model.context) feeds[config.model.context] = new ort.Tensor('int64', context, [m, 3]);
  const out = await session.run(feeds);
  const prob = out[config.model.output];
  const values = prob.data;
  if (checkShape && (prob.dims[0] !== m || prob.dims[1] !== CELLS || prob.dims[2] !== CELLS)) {
    throw new Error(`model output has shape [${prob.dims}], expected [${m},${CELLS},${CELLS}]`);
  }
  const copy = Float32Array.from(values);
  prob.dispose?.();
  return copy;
}

/**
 * Stream HU chunks of a DICOM series from a reader worker (reader.js).
 * Calls onMeta(meta) once, then onChunk(chunk) for each chunk in z order;
 * resolves with the reader's 'done' message.
 */
function streamFromReader(files, id, chunkSlices, previewSize, wholeReadBytes, onMeta, onChunk, onArrive) {
  return new Promise((resolve, reject) => {
    const reader = new Worker(new URL('./reader.js', import.meta.url), { type: 'module', name: 'heartbox-reader' });
    const queue = [];
    let busy = false;
    let finished = null;
    const fail = (e) => { reader.terminate(); reject(e); };
    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        while (queue.length) {
          const m = queue.shift();
          if (m.type === 'meta') onMeta(m);
          else if (m.type === 'chunk') { await onChunk(m); reader.postMessage({ type: 'ack' }); }
          else if (m.type === 'done') finished = m;
        }
      } catch (e) { fail(e); return; } finally { busy = false; }
      if (finished) { reader.terminate(); resolve(finished); }
    };
    reader.onmessage = (ev) => {
      const m = ev.data;
      if (m.type === 'progress') { postMessage({ ...m, id }); return; }
      if (m.type === 'error') {
        const e = m.user ? new DicomError(m.message) : new Error(m.message);
        fail(e);
        return;
      }
      if (m.type === 'chunk') onArrive?.(m); // start work that need not wait for earlier chunks
      queue.push(m);
      pump();
    };
    reader.onerror = (ev) => fail(new Error(`DICOM reader failed: ${ev.message || 'script error'}`));
    reader.postMessage({ type: 'start', files, chunkSlices, previewSize, wholeReadBytes });
  });
}

async function run(msg) {
  const { id, options = {} } = msg;
  const timings = {};
  const tStart = now();
  // the model session (first run only) loads while the reader parses the headers
  const fresh = sessionPromise === null;
  const sessionP = getSession(options.numThreads);
  sessionP.catch(() => {}); // a failure is reported where it is awaited
  const config = await loadConfig();
  const chunk = Math.max(1, options.chunkSlices || config.runtime?.chunk_slices || 32);
  const previewSize = options.previewSize || 160;
  const wantPreview = options.previews !== false;
  let meta;
  let sched;
  let preview = null;
  let inferMs = 0;
  let tFirst = null;
  const onMeta = (m) => {
    meta = m;
    const [Z, pY, pX] = m.preview.shape;
    const [, H, W] = m.shape;
    // the coarse-to-fine slice schedule (zschedule.js) decides which slices are scored
    const score = async (data, n, context, nRows) => {
      const { session } = await sessionP;
      const t = now();
      const p = await runChunk(session, config, data, n, H, W, context, nRows);
      inferMs += now() - t;
      return p;
    };
    sched = new SliceScheduler(m.shape, m.spacing[0], config.postprocess, score, chunk);
    if (wantPreview) preview = new Int16Array(Z * pY * pX);
  };
  let clipped = 0;
  let huMs = 0;
  let decodeMs = 0;
  let decoded = 0;
  let codecMs = 0;
  let waitDecodeMs = 0;
  let aheadDecoded = 0;
  // compressed slices: their bytes by z (decoded on demand) and which preview rows are filled
  const compressed = new Map();
  let previewHave = null;
  const decodeValues = (conv, bytes) => {
    const t = now();
    const v = decodeFrame(conv.ts, bytes, conv.rows, conv.cols, conv.name);
    decodeMs += now() - t;
    decoded += 1;
    return v;
  };
  const previewRow = (z, conv, values, orient) => {
    if (!preview || previewHave[z]) return;
    const [, pY, pX] = meta.preview.shape;
    lazySlice(conv, values, orient).previewInto(preview, z * pY * pX, pY, pX, meta.preview.stride);
    previewHave[z] = 1;
  };
  // compressed slices are decoded on the decode pool, in parallel: the ones the
  // coarse step reads as soon as their chunk arrives, the others when the
  // schedule is about to read them (sched.prepare); values wait in `ready`
  let coarse = null;
  const ahead = new Map(); // z → Promise of its stored values
  const ready = new Map(); // z → stored values, until converted to HU
  const decodeAhead = (z, conv, bytes) => {
    decodePool ??= new DecodePool(Math.min(4, self.navigator?.hardwareConcurrency || 2));
    const p = decodePool.decode(conv.ts, bytes, conv.rows, conv.cols, conv.name);
    p.catch(() => {}); // awaited where it is needed
    ahead.set(z, p);
  };
  const collect = async (zs) => {
    const t = now();
    const got = await Promise.all(zs.map((z) => ahead.get(z)));
    zs.forEach((z, i) => { ahead.delete(z); ready.set(z, got[i]); });
    aheadDecoded += zs.length;
    waitDecodeMs += now() - t;
  };
  const onArrive = (c) => {
    if (!c.conv || !c.conv.some((cv) => cv.ts)) return;
    coarse ??= coarseReads(meta.shape[0], meta.spacing[0], config.postprocess);
    c.conv.forEach((cv, k) => { if (cv.ts && coarse[c.z0 + k]) decodeAhead(c.z0 + k, cv, c.raw[k]); });
  };
  const prepare = async (zs) => {
    const want = zs.filter((z) => compressed.has(z) && !ready.has(z) && !sched.isConverted(z));
    for (const z of want) if (!ahead.has(z)) { const c = compressed.get(z); decodeAhead(z, c.conv, c.bytes); }
    if (want.length) await collect(want);
  };
  const onChunk = async (c) => {
    await sessionP;
    if (tFirst === null) tFirst = now();
    if (c.conv) {
      const zs = [];
      for (let k = 0; k < c.n; k++) if (ahead.has(c.z0 + k)) zs.push(c.z0 + k);
      if (zs.length) await collect(zs);
      if (!sched.prepare && c.conv.some((cv) => cv.ts)) sched.prepare = prepare;
    }
    let data = c.data; // HU of the whole chunk (a volume given directly)
    if (!data) {
      // DICOM: stored values, or compressed frames; decoded and converted to
      // HU only for the slices the schedule scores
      const [, H, W] = meta.shape;
      if (!previewHave) previewHave = new Uint8Array(meta.shape[0]);
      for (const cv of c.conv) {
        if (cv.ts) { const t = now(); await loadCodec(cv.ts); codecMs += now() - t; }
      }
      data = (k) => {
        const conv = c.conv[k];
        let values = c.raw[k];
        if (conv.ts) {
          const z = c.z0 + k;
          values = ready.get(z) || decodeValues(conv, values);
          ready.delete(z);
          previewRow(c.z0 + k, conv, values, c.orient);
        }
        const t = now();
        const out = new Int16Array(H * W);
        if (lazySlice(conv, values, c.orient).hu(out)) clipped += 1;
        huMs += now() - t;
        return out;
      };
      c.conv.forEach((cv, k) => {
        if (cv.ts) compressed.set(c.z0 + k, { conv: cv, bytes: c.raw[k], orient: c.orient });
        else if (previewHave) previewHave[c.z0 + k] = 1;
      });
    }
    await sched.push(c.z0, c.n, data);
    if (preview) {
      // rows of compressed slices are filled when (and if) they are decoded
      const px = meta.preview.shape[1] * meta.preview.shape[2];
      for (let k = 0; k < c.n; k++) {
        if (!c.conv || !c.conv[k].ts) preview.set(c.preview.subarray(k * px, (k + 1) * px), (c.z0 + k) * px);
      }
    }
    postMessage({ type: 'progress', id, phase: 'infer', done: c.z0 + c.n, total: meta.shape[0] });
  };
  let done;
  let poolMs = 0;
  if (msg.volume) {
    // a volume given directly: {hu: Int16Array (z,y,x), shape, spacing, affine?, seriesUid?}
    const v = msg.volume;
    const shape = v.shape.map(Number);
    const [Z, H, W] = shape;
    const spacing = v.spacing ? v.spacing.map(Number) : [1, 1, 1];
    if (!(v.hu instanceof Int16Array) || v.hu.length !== Z * H * W) {
      throw new DicomError(`volume.hu must be an Int16Array of ${shape.join('x')} values`);
    }
    const stride = Math.max(1, Math.ceil(Math.max(H, W) / previewSize));
    const pY = Math.ceil(H / stride);
    const pX = Math.ceil(W / stride);
    onMeta({
      shape, spacing,
      affine: v.affine || [[0, 0, spacing[2], 0], [0, spacing[1], 0, 0], [spacing[0], 0, 0, 0], [0, 0, 0, 1]],
      info: { series_uid: v.seriesUid ?? null }, warnings: [], preview: { shape: [Z, pY, pX], stride }, header_ms: 0,
    });
    // views into the caller's volume, no copies: chunks of `chunk` scored slices
    const span = chunk * zStep(spacing[0], config.postprocess);
    for (let z0 = 0; z0 < Z; z0 += span) {
      const n = Math.min(span, Z - z0);
      const data = v.hu.subarray(z0 * H * W, (z0 + n) * H * W);
      const pv = new Int16Array(n * pY * pX);
      for (let k = 0; k < n; k++) for (let yy = 0; yy < pY; yy++) for (let xx = 0; xx < pX; xx++) {
        pv[(k * pY + yy) * pX + xx] = data[k * H * W + yy * stride * W + xx * stride];
      }
      await onChunk({ z0, n, data, preview: pv });
    }
    done = { warnings: [], reader_ms: 0, total_ms: 0 };
  } else {
    const files = Array.from(msg.files || []);
    if (files.length === 0) throw new DicomError('No files selected: choose a DICOM folder or the DICOM files of one CT series.');
    const pool0 = decodePool?.decodeMs ?? 0;
    done = await streamFromReader(files, id, chunk, previewSize, options.wholeReadBytes, onMeta, onChunk, onArrive);
    poolMs = (decodePool?.decodeMs ?? 0) - pool0;
  }
  const tEnd = now();
  const { prob, slicesRun } = sched.finish();
  const { initMs } = await sessionP;
  timings.init_ms = fresh ? initMs : 0; // model load, overlapped with reading the headers
  timings.threads = threadsUsed;
  timings.read_parse_ms = meta.header_ms; // headers of all files + series selection and geometry
  timings.hu_ms = huMs; // HU conversion of the scored slices (DICOM only)
  timings.reader_ms = done.reader_ms; // reader: stored values + preview voxels (overlapped)
  timings.run_ms = inferMs; // onnxruntime-web runs only
  timings.infer_ms = tFirst === null ? 0 : tEnd - tFirst; // preprocess + inference wall time
  timings.slices_scored = slicesRun; // slices the model ran on (the rest copy a neighbour)
  // compressed frames, decoded only when scored or previewed: the coarse step's
  // ahead on the decode pool (CPU time summed over its workers; the wait for
  // them), the rest here
  timings.decode_ms = decodeMs + poolMs;
  timings.decode_pool_ms = poolMs;
  timings.decode_wait_ms = waitDecodeMs;
  timings.slices_decoded = decoded + aheadDecoded;
  timings.slices_decoded_ahead = aheadDecoded;
  timings.codec_load_ms = codecMs; // loading the decoder's module + wasm (first series only)
  const t3 = now();
  const { shape, spacing, affine, info } = meta;
  const box = sectorFromProb(prob, shape, spacing, config.postprocess, options.marginMm);
  if (preview && compressed.size) finishPreview(preview, meta.preview.shape, previewHave, box, compressed, decodeValues, previewRow);
  const sector = sectorToDict({
    ...box, shape, spacing, affine, seriesUid: info.series_uid, modelSha256: config.model.sha256,
  });
  timings.post_ms = now() - t3;
  timings.total_ms = now() - tStart;
  const result = {
    type: 'result', id, sector, warnings: [...meta.warnings, ...done.warnings, ...clipWarning(clipped)], timings, info,
    features: { cells: box.cells, volume_ml: box.volume_ml, mean_prob: box.mean_prob },
    preview: preview ? { data: preview, shape: meta.preview.shape, stride: meta.preview.stride } : null,
  };
  postMessage(result, preview ? [preview.buffer] : []);
}

/**
 * Previews of a compressed series: only the decoded slices have preview rows.
 * The slice at the box centre (the axial view) is decoded if it was not; every
 * other missing row copies the nearest decoded one (ties: the lower), so the
 * coronal and sagittal views show the decoded slices.
 */
function finishPreview(preview, [Z, pY, pX], have, box, compressed, decodeValues, previewRow) {
  // the axial view's slice, as previews.js picks it
  const zc = box.found ? Math.min(Z - 1, Math.floor((box.z[0] + box.z[1] - 1) / 2)) : Math.floor(Z / 2);
  const c = compressed.get(zc);
  if (c && !have[zc]) previewRow(zc, c.conv, decodeValues(c.conv, c.bytes), c.orient);
  const px = pY * pX;
  let prev = -1;
  const next = new Int32Array(Z).fill(-1);
  for (let z = Z - 1, n = -1; z >= 0; z--) { if (have[z]) n = z; next[z] = n; }
  for (let z = 0; z < Z; z++) {
    if (have[z]) { prev = z; continue; }
    const n = next[z];
    const src = prev < 0 ? n : n < 0 ? prev : (z - prev <= n - z ? prev : n);
    if (src >= 0) preview.copyWithin(z * px, src * px, (src + 1) * px);
  }
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

// Another same-origin ONNX file with an int16 [N, H, W] input, for comparisons
// on the speed page (?model=other.onnx&input=NAME); timing only, output unchecked.
async function otherSession(url, inputName, numThreads) {
  const base = await getSession(numThreads); // fixes wasm paths and threads first
  const t0 = now();
  const resp = await fetch(new URL(url, CONFIG_URL));
  if (!resp.ok) throw new Error(`cannot load ${url} (HTTP ${resp.status})`);
  const session = await ort.InferenceSession.create(new Uint8Array(await resp.arrayBuffer()), {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all',
  });
  const config = {
    model: { input: inputName || session.inputNames[0], context: session.inputNames[1], output: session.outputNames[0] },
  };
  return { session, config, initMs: now() - t0, base };
}

async function bench(msg) {
  const { id, batches, size, reps } = msg;
  const { session, config, initMs } = msg.modelUrl
    ? await otherSession(msg.modelUrl, msg.inputName, msg.numThreads)
    : await getSession(msg.numThreads);
  const check = !msg.modelUrl;
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
      // b slices, each scored with its neighbours in the batch as z context
      const { local } = gatherRows(Array.from({ length: b }, (_, k) => k), b, 1);
      await runChunk(session, config, data, b, H, W, local, b, check); // warm-up
      const times = [];
      for (let r = 0; r < reps; r++) {
        const t0 = now();
        await runChunk(session, config, data, b, H, W, local, b, check);
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
  postMessage({ type: 'result', id, threads: threadsUsed, init_ms: initMs, size, reps, points, model: msg.modelUrl || config.model.file });
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
