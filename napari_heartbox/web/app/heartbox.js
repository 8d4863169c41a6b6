// napari-heartbox in the browser: the embeddable ES-module API.
//
//   import { findHeartSector } from './heartbox.js';
//   const sector = await findHeartSector(fileList);          // heartbox.sector/1 object
//   document.addEventListener('heartbox:sector', (e) => console.log(e.detail.sector));
//
// Input: a FileList / array of File objects (one DICOM series: uncompressed, deflated,
// RLE, JPEG Lossless, JPEG-LS, JPEG 2000 or HTJ2K; enhanced multi-frame CT) or
// a volume {hu: Int16Array (z, y, x) in HU, shape: [Z, Y, X], spacing: [dz, dy, dx],
// affine?: 4x4 (z, y, x, 1) voxel centres -> LPS mm, seriesUid?}.
// Everything runs in a module Web Worker (worker.js) with onnxruntime-web (wasm);
// nothing is uploaded anywhere.
//
// After every successful run a `heartbox:sector` CustomEvent is dispatched on
// `options.eventTarget` (default: document) with detail {sector, warnings,
// timings}; inside an iframe the page also posts
// {type: 'heartbox:sector', sector} to the parent window (same origin only).

const WORKER_URL = new URL('./worker.js', import.meta.url);
export const SECTOR_EVENT = 'heartbox:sector';

let shared = null; // {worker, numThreads}
let nextId = 1;

/**
 * A pipeline bound to one Web Worker (and so to one onnxruntime thread count).
 * Reuse it for several series: the model session is created only once.
 */
export class HeartboxWorker {
  constructor({ numThreads = 1 } = {}) {
    this.numThreads = numThreads;
    this.worker = new Worker(WORKER_URL, { type: 'module', name: 'heartbox' });
    this.pending = new Map();
    this.queue = Promise.resolve();
    this.worker.onmessage = (ev) => this._onMessage(ev.data);
    this.worker.onerror = (ev) => {
      const err = new Error(`heartbox worker failed: ${ev.message || 'script error'}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  _onMessage(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'progress' || msg.type === 'bench-point') {
      p.onProgress?.(msg);
    } else if (msg.type === 'result') {
      this.pending.delete(msg.id);
      p.resolve(msg);
    } else if (msg.type === 'error') {
      this.pending.delete(msg.id);
      const e = new Error(msg.message);
      e.userError = !!msg.user;
      p.reject(e);
    }
  }

  // one job at a time per worker (one model session): later calls wait their turn
  _call(message, onProgress, transfer = []) {
    const job = this.queue.then(() => new Promise((resolve, reject) => {
      const id = nextId++;
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...message, id, numThreads: this.numThreads }, transfer);
    }));
    this.queue = job.catch(() => {});
    return job;
  }

  /** Full result: {sector, warnings, timings, info, features, preview}. */
  run(input, options = {}) {
    const opts = {
      numThreads: this.numThreads,
      marginMm: options.marginMm,
      previews: options.previews,
      chunkSlices: options.chunkSlices,
      wholeReadBytes: options.wholeReadBytes, // series larger than this are read in two passes
    };
    const msg = { type: 'run', options: opts };
    let transfer = [];
    if (isVolume(input)) {
      msg.volume = input;
      // options.transfer: move the HU buffer into the worker instead of copying it
      // (input.hu is left empty); saves a copy of the whole volume
      if (options.transfer) transfer = [input.hu.buffer];
    } else {
      msg.files = toFiles(input);
    }
    return this._call(msg, options.onProgress, transfer);
  }

  /** Speed benchmark: median latency per batch size (see speed.html). */
  bench({ batches, size = 512, reps = 3, onPoint, modelUrl, inputName } = {}) {
    return this._call({ type: 'bench', batches, size, reps, modelUrl, inputName }, onPoint);
  }

  terminate() { this.worker.terminate(); }
}

function isVolume(x) {
  return x && typeof x === 'object' && x.hu instanceof Int16Array && Array.isArray(x.shape);
}

function toFiles(x) {
  if (!x) return [];
  if (x instanceof File) return [x];
  return Array.from(x).filter((f) => f instanceof File);
}

function sharedWorker(numThreads) {
  if (!shared || shared.numThreads !== numThreads) {
    shared?.terminate();
    shared = new HeartboxWorker({ numThreads });
  }
  return shared;
}

/**
 * Run the pipeline and return everything (sector, warnings, timings, previews).
 *
 * @param {FileList|File[]|object} filesOrVolume DICOM files of one series, or a volume
 * @param {object} [options] {numThreads=1, marginMm, onProgress(msg), eventTarget, previews,
 *   transfer (a volume's hu buffer is moved to the worker, not copied)}
 */
export async function analyze(filesOrVolume, options = {}) {
  const w = sharedWorker(options.numThreads || 1);
  const result = await w.run(filesOrVolume, options);
  const detail = { sector: result.sector, warnings: result.warnings, timings: result.timings };
  const target = options.eventTarget || (typeof document !== 'undefined' ? document : null);
  target?.dispatchEvent(new CustomEvent(SECTOR_EVENT, { detail }));
  if (typeof window !== 'undefined' && window.parent && window.parent !== window) {
    window.parent.postMessage({ type: SECTOR_EVENT, sector: result.sector }, window.location.origin);
  }
  return result;
}

/**
 * Find the heart sector of a CT series in the browser.
 *
 * @param {FileList|File[]|object} filesOrVolume DICOM files of one CT series
 *   (any transfer syntax but lossy DCT JPEG), or {hu: Int16Array, shape, spacing, affine?, seriesUid?}
 * @param {object} [options] {numThreads=1, marginMm, onProgress(msg), eventTarget}
 * @returns {Promise<object>} the heartbox.sector/1 object (found, voxel, patient_mm, ...)
 */
export async function findHeartSector(filesOrVolume, options = {}) {
  return (await analyze(filesOrVolume, options)).sector;
}
