// Module Web Worker of the decode pool (decodepool.js): decodes compressed
// DICOM frames with codecs.js and posts the stored values back (transferred).
//
// In: {id, ts, bytes: Uint8Array, rows, cols, name}
// Out: {id, values: Uint16Array} | {id, error, user}

import { loadCodec, decodeFrame } from './codecs.js';
import { DicomError } from './errors.js';

self.onmessage = async (ev) => {
  const { id, ts, bytes, rows, cols, name } = ev.data;
  try {
    await loadCodec(ts);
    const t0 = performance.now();
    const values = decodeFrame(ts, bytes, rows, cols, name);
    postMessage({ id, values, ms: performance.now() - t0 }, [values.buffer]);
  } catch (e) {
    postMessage({ id, error: String((e && e.message) || e), user: e instanceof DicomError });
  }
};
