// DICOM pixel codecs for the browser workers: one compressed frame → its
// stored 16-bit values.
//
// * Every decoder is loaded only when a series needs it (dynamic import of the
//   vendor module, then its wasm), once per worker, and is then synchronous:
//   decodeFrame() can be called from the slice schedule's data(k) callback.
// * The output is the frame's 16 stored bits per pixel as a Uint16Array in
//   row-major (row, column) order of the stored image; the caller masks them to
//   BitsStored or sign-extends them (PixelRepresentation), exactly as for
//   uncompressed data (dicom.js sliceToHU), so compressed and uncompressed
//   files of one image give the same HU.
// * A frame that does not decode, or decodes to another size or layout than
//   the header says, throws DicomError with one line naming the file.
//
// Sources (npm, pinned in web_export/package-lock.json, copied by build.mjs):
//   JPEG Lossless (process 14, SV1 and other predictors): jpeg-lossless.js (ours;
//     the npm jpeg-lossless-decoder-js 2.1.2 gets the last pixel of WG04 CT2_JPLL wrong)
//   JPEG-LS lossless / near-lossless: @cornerstonejs/codec-charls (CharLS, wasm)
//   JPEG 2000 lossless / lossy: @cornerstonejs/codec-openjpeg (OpenJPEG, wasm)
//   HTJ2K: @cornerstonejs/codec-openjph (OpenJPH, wasm)
//   RLE Lossless: here (DICOM PS3.5 Annex G, a few lines of PackBits)
//   Deflated Explicit VR Little Endian: the whole data set is inflated with the
//   browser's DecompressionStream before parsing (dicom.js inflateDataset), so
//   its pixels are plain uncompressed data and never reach this module.

import { DicomError } from './errors.js';

const VENDOR = new URL('./vendor/codecs/', import.meta.url);

/** Transfer syntaxes whose pixel data this module decodes, with their names and codec. */
export const COMPRESSED_SYNTAXES = {
  '1.2.840.10008.1.2.4.57': { label: 'JPEG Lossless', codec: 'jpeg-lossless' },
  '1.2.840.10008.1.2.4.70': { label: 'JPEG Lossless SV1', codec: 'jpeg-lossless' },
  '1.2.840.10008.1.2.4.80': { label: 'JPEG-LS Lossless', codec: 'jpeg-ls' },
  '1.2.840.10008.1.2.4.81': { label: 'JPEG-LS Near-Lossless', codec: 'jpeg-ls' },
  '1.2.840.10008.1.2.4.90': { label: 'JPEG 2000 Lossless', codec: 'j2k' },
  '1.2.840.10008.1.2.4.91': { label: 'JPEG 2000', codec: 'j2k' },
  '1.2.840.10008.1.2.4.201': { label: 'HTJ2K Lossless', codec: 'htj2k' },
  '1.2.840.10008.1.2.4.202': { label: 'HTJ2K Lossless RPCL', codec: 'htj2k' },
  '1.2.840.10008.1.2.4.203': { label: 'HTJ2K', codec: 'htj2k' },
  '1.2.840.10008.1.2.5': { label: 'RLE Lossless', codec: 'rle' },
};

/** Compressed syntaxes the browser refuses (lossy 8/12-bit DCT JPEG: no CT decoder shipped). */
export const UNSUPPORTED_SYNTAXES = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
};

const CODEC_NAMES = {
  'jpeg-lossless': 'JPEG Lossless', 'jpeg-ls': 'JPEG-LS', j2k: 'JPEG 2000', htj2k: 'HTJ2K', rle: 'RLE',
};

// Emscripten module factories: [vendor module, wasm file, embind decoder class]
const WASM_CODECS = {
  'jpeg-ls': ['charlswasm_decode.mjs', 'charlswasm_decode.wasm', 'JpegLSDecoder'],
  j2k: ['openjpegwasm_decode.mjs', 'openjpegwasm_decode.wasm', 'J2KDecoder'],
  htj2k: ['openjphjs.mjs', 'openjphjs.wasm', 'HTJ2KDecoder'],
};

const pending = new Map(); // codec → Promise of its decode function, while loading
const ready = new Map(); // codec → decode(bytes, rows, cols) → Uint16Array, once loaded

/**
 * Load (once) the decoder of a transfer syntax.
 *
 * @param {string} ts transfer syntax UID (a key of COMPRESSED_SYNTAXES)
 * @returns {Promise<{codec: string, load_ms: number}>}
 */
export async function loadCodec(ts) {
  const entry = COMPRESSED_SYNTAXES[ts];
  if (!entry) throw new DicomError(`no decoder for transfer syntax ${ts}`);
  const t0 = performance.now();
  const { codec } = entry;
  if (!ready.has(codec) && !pending.has(codec)) {
    pending.set(codec, makeDecoder(codec).then(
      (decode) => { ready.set(codec, decode); pending.delete(codec); },
      (e) => { pending.delete(codec); throw e; }));
  }
  try {
    if (!ready.has(codec)) await pending.get(codec);
  } catch (e) {
    throw new DicomError(`the ${CODEC_NAMES[codec]} decoder could not be loaded ` +
      `(${String((e && e.message) || e).split('\n')[0]}); was the bundle exported with its vendor/codecs folder?`);
  }
  return { codec: entry.codec, load_ms: performance.now() - t0 };
}

async function makeDecoder(codec) {
  if (codec === 'rle') return decodeRLE;
  if (codec === 'jpeg-lossless') {
    const { decodeJpegLossless } = await import('./jpeg-lossless.js');
    return (bytes, rows, cols) => {
      const img = decodeJpegLossless(bytes);
      if (img.rows !== rows || img.cols !== cols) {
        throw new Error(`the JPEG image is ${img.cols}x${img.rows}, the header says ${cols}x${rows}`);
      }
      return img.pixels;
    };
  }
  const [js, wasm, cls] = WASM_CODECS[codec];
  const factory = (await import(new URL(js, VENDOR).href)).default;
  const wasmUrl = new URL(wasm, VENDOR).href;
  // OpenJPEG prints "[INFO] ..." lines for every frame: not to the console; the
  // last error line goes into the message of a frame that fails
  let lastError = '';
  const mod = await factory({
    locateFile: () => wasmUrl,
    print: () => {},
    printErr: (text) => { lastError = String(text).replace(/^\[ERROR\]\s*/, '').trim(); },
  });
  return (bytes, rows, cols) => {
    const dec = new mod[cls]();
    lastError = '';
    try {
      dec.getEncodedBuffer(bytes.length).set(bytes);
      dec.decode();
      const fi = dec.getFrameInfo();
      if (fi.width !== cols || fi.height !== rows) {
        throw new Error(`the codestream is ${fi.width}x${fi.height}, the header says ${cols}x${rows}`);
      }
      if (fi.componentCount !== 1) throw new Error(`${fi.componentCount} components (CT has 1)`);
      if (fi.bitsPerSample > 16) throw new Error(`${fi.bitsPerSample} bits per sample`);
      const d = dec.getDecodedBuffer(); // a view into the wasm heap: copy it out
      if (fi.bitsPerSample <= 8) return Uint16Array.from(d.subarray(0, rows * cols));
      return new Uint16Array(d.buffer.slice(d.byteOffset, d.byteOffset + 2 * rows * cols));
    } catch (e) {
      const why = typeof e === 'number' ? `decoder error ${e}` : String((e && e.message) || e).split('\n')[0];
      throw new Error(lastError && !why.includes(lastError) ? `${why}: ${lastError}` : why);
    } finally {
      dec.delete();
    }
  };
}

/**
 * The stored values of one compressed frame. The decoder must have been
 * loaded with loadCodec first.
 *
 * @param {string} ts transfer syntax UID
 * @param {Uint8Array} bytes the frame's compressed bytes (its fragments joined)
 * @param {number} rows Rows
 * @param {number} cols Columns
 * @param {string} name the file (and frame) for messages
 * @returns {Uint16Array} rows × cols stored values, 16 bits each
 * @throws {DicomError} one line naming the file when the frame cannot be decoded
 */
export function decodeFrame(ts, bytes, rows, cols, name) {
  const entry = COMPRESSED_SYNTAXES[ts];
  const decode = entry && ready.get(entry.codec);
  if (!decode) throw new Error(`decodeFrame(${ts}) before loadCodec`);
  try {
    return decode(bytes, rows, cols);
  } catch (e) {
    if (e instanceof DicomError) throw e;
    const why = typeof e === 'number' ? `decoder error ${e}` : String((e && e.message) || e).split('\n')[0];
    throw new DicomError(`${name}: cannot decode the ${entry.label} pixel data (${why}).`);
  }
}

/**
 * RLE Lossless (DICOM PS3.5 Annex G) of a 16-bit, one-sample frame: a 64-byte
 * header of 16 little-endian uint32 (segment count, then each segment's
 * offset), two PackBits segments: the high bytes, then the low bytes.
 */
export function decodeRLE(bytes, rows, cols) {
  const n = rows * cols;
  if (bytes.length < 64) throw new Error('the RLE header is truncated');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nseg = dv.getUint32(0, true);
  if (nseg !== 2) throw new Error(`${nseg} RLE segments (16-bit CT has 2)`);
  const out = new Uint16Array(n);
  for (let s = 0; s < 2; s++) {
    const start = dv.getUint32(4 + 4 * s, true);
    const end = s + 1 < nseg ? dv.getUint32(8 + 4 * s, true) : bytes.length;
    if (start < 64 || end > bytes.length || end < start) throw new Error('an RLE segment offset is out of range');
    const shift = s === 0 ? 8 : 0;
    let i = start;
    let k = 0;
    while (k < n && i < end) {
      const h = bytes[i++];
      if (h < 128) { // copy h + 1 literal bytes
        const m = Math.min(h + 1, n - k, end - i);
        for (let j = 0; j < m; j++) out[k++] |= bytes[i++] << shift;
      } else if (h > 128) { // repeat the next byte 257 - h times
        const v = bytes[i++] << shift;
        const m = Math.min(257 - h, n - k);
        for (let j = 0; j < m; j++) out[k++] |= v;
      } // 128: no operation
    }
    if (k < n) throw new Error(`RLE segment ${s + 1} holds ${k} of ${n} pixels`);
  }
  return out;
}
