// Module Web Worker (started by worker.js): reads and decodes the DICOM files
// while the inference worker runs the model, so the two overlap on two cores.
//
// 1. headers: when the files total at most WHOLE_READ_BYTES, each file is
//    read whole, once (one browser read per file: a read costs ~0.4 ms of
//    overhead whatever its size, so a separate header pass would double
//    them); larger series read only the first PREFIX bytes of each file here
//    (dicom-parser stops at the PixelData element). Then the series and the
//    grid are chosen (dicom.js, a port of the Python loader) and
//    {type:'meta'} is posted;
// 2. pixels: for each chunk of output slices (z order, index 0 = most
//    inferior) takes the pixel bytes (read now for large series, else
//    already in memory and released once used), copies out each slice's
//    stored values and computes its preview voxels in HU, and posts
//    {type:'chunk', z0, n, raw, conv, preview} with the buffers transferred.
//    The HU of a whole slice are computed by the inference worker, and only
//    for the slices the model scores (lazySlice in dicom.js). At most
//    MAX_IN_FLIGHT chunks wait for an {type:'ack'}, so memory stays bounded
//    whatever the series length.
//
// In: {type:'start', files, chunkSlices, previewSize, wholeReadBytes?} | {type:'ack'}
// Out: {type:'meta'|'chunk'|'progress'|'done'|'error', ...}

import {
  parseHeader, assembleSeries, storedValues, lazySlice, DicomError, frameRecords, deflatedAt, inflateDataset,
  isCompressed, compressedFrame,
} from './dicom.js';

const PREFIX = 16384; // bytes read per file for its header (large series)
const WHOLE_READ_BYTES = 768 * 2 ** 20; // series up to this size are read whole, once
const MAX_IN_FLIGHT = 2;
let credits = MAX_IN_FLIGHT;
let wake = null;

function now() { return performance.now(); }

async function readHeader(file, name, whole) {
  const size = file.size;
  let head = await (whole ? file : file.slice(0, Math.min(size, PREFIX))).arrayBuffer();
  const magic = size >= 132 ? new TextDecoder().decode(new Uint8Array(head, 128, 4)) : '';
  if (magic !== 'DICM') return [{ name, error: 'not a DICOM file' }];
  let full = whole;
  const deflated = deflatedAt(head);
  if (deflated !== null) { // the whole data set is deflated: inflate it, keep it in memory
    if (!whole) head = await file.arrayBuffer();
    head = await inflateDataset(head, deflated, name);
    full = true;
  }
  let r = parseHeader(head, name);
  if (!full && (r.error || !r.pixel) && size > PREFIX) { // long header
    head = await file.arrayBuffer();
    r = parseHeader(head, name);
    full = true;
  }
  r.file = file;
  r.buffer = full ? head : null; // else the pixel bytes are read later, chunk by chunk
  return frameRecords(r);
}

const pixelReads = new WeakMap(); // File → Promise of its PixelData value (encapsulated, multi-frame)

async function readPixels(r) {
  if (r.buffer) return r; // read whole in the header pass
  if (isCompressed(r)) { // the whole encapsulated value, once per file
    if (!pixelReads.has(r.file)) pixelReads.set(r.file, r.file.slice(r.pixel.offset).arrayBuffer());
    const buf = await pixelReads.get(r.file);
    return { ...r, buffer: buf, pixel: { ...r.pixel, offset: 0 } };
  }
  const n = 2 * r.rows * r.cols;
  const buf = await r.file.slice(r.pixel.offset, r.pixel.offset + Math.min(n, r.pixel.length)).arrayBuffer();
  return { ...r, buffer: buf, pixel: { ...r.pixel, offset: 0, length: buf.byteLength } };
}

async function waitCredit() {
  while (credits <= 0) await new Promise((res) => { wake = res; });
  credits -= 1;
}

async function start({ files, chunkSlices, previewSize, wholeReadBytes = WHOLE_READ_BYTES }) {
  const t0 = now();
  const records = [];
  const BATCH = 128;
  const whole = files.reduce((a, f) => a + f.size, 0) <= wholeReadBytes;
  for (let i = 0; i < files.length; i += BATCH) {
    const part = files.slice(i, i + BATCH);
    const parsed = await Promise.all(part.map((f) => readHeader(f, f.name, whole))); // file names in messages, like Python
    for (const rs of parsed) records.push(...rs);
    postMessage({ type: 'progress', phase: 'read', done: Math.min(i + BATCH, files.length), total: files.length });
  }
  const series = assembleSeries(records);
  const used = new Set(series.slices);
  for (const r of records) if (!used.has(r)) r.buffer = null; // other series, duplicates: not needed
  const { slices, sourceOf, orient, shape } = series;
  const [Z, H, W] = shape;
  const stride = Math.max(1, Math.ceil(Math.max(H, W) / previewSize));
  const pY = Math.ceil(H / stride);
  const pX = Math.ceil(W / stride);
  postMessage({
    type: 'meta', shape, spacing: series.spacing, affine: series.affine, info: series.info,
    warnings: series.warnings, preview: { shape: [Z, pY, pX], stride }, header_ms: now() - t0,
  });
  let reader_ms = 0;
  const readChunk = (z0) => {
    const n = Math.min(chunkSlices, Z - z0);
    const idx = [...new Set(sourceOf.slice(z0, z0 + n))];
    return Promise.all(idx.map((k) => readPixels(slices[k]))).then((rs) => new Map(idx.map((k, j) => [k, rs[j]])));
  };
  const lastUse = new Int32Array(slices.length); // last output slice that each file fills
  sourceOf.forEach((k, z) => { lastUse[k] = z; });
  // how the worker turns a slice's values into HU; `ts` when they are still compressed
  const conv = (r) => ({ name: r.name, rows: r.rows, cols: r.cols, bitsStored: r.bitsStored,
    pixelRepresentation: r.pixelRepresentation, slope: r.slope, intercept: r.intercept,
    ts: isCompressed(r) ? r.transferSyntax : null });
  let pending = readChunk(0);
  for (let z0 = 0; z0 < Z; z0 += chunkSlices) {
    const n = Math.min(chunkSlices, Z - z0);
    const px = await pending;
    if (z0 + n < Z) pending = readChunk(z0 + n); // prefetch while converting this chunk
    await waitCredit();
    const t = now();
    const raw = [];
    const convs = [];
    const preview = new Int16Array(n * pY * pX);
    for (let k = 0; k < n; k++) {
      const r = px.get(sourceOf[z0 + k]);
      if (isCompressed(r)) {
        // kept compressed: the worker decodes only the slices it scores, and
        // fills their preview voxels (the other preview rows copy a decoded slice)
        raw.push(compressedFrame(r));
      } else {
        const values = storedValues(r);
        lazySlice(r, values, orient).previewInto(preview, k * pY * pX, pY, pX, stride);
        raw.push(values);
      }
      convs.push(conv(r));
    }
    for (let z = z0; z < z0 + n; z++) if (lastUse[sourceOf[z]] === z) slices[sourceOf[z]].buffer = null; // release once used
    reader_ms += now() - t;
    postMessage({ type: 'chunk', z0, n, raw, conv: convs, orient, preview }, [...raw.map((v) => v.buffer), preview.buffer]);
  }
  postMessage({ type: 'done', warnings: [], reader_ms, total_ms: now() - t0 });
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type === 'ack') {
    credits += 1;
    if (wake) { const w = wake; wake = null; w(); }
    return;
  }
  if (msg.type === 'start') {
    try {
      await start(msg);
    } catch (e) {
      postMessage({ type: 'error', message: String((e && e.message) || e), user: e instanceof DicomError });
    }
  }
};
