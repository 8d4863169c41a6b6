// A pool of decoder workers (decoder-worker.js), so that the frames of a
// compressed series decode on every core while the inference worker waits or
// runs the model. Jobs go to the worker with the fewest jobs in flight; each
// worker loads a codec the first time a job needs it.

import { DicomError } from './errors.js';

const WORKER_URL = new URL('./decoder-worker.js', import.meta.url);

export class DecodePool {
  /** @param {number} size number of decoder workers (at least 1) */
  constructor(size) {
    this.workers = Array.from({ length: Math.max(1, size | 0) }, (_, i) => {
      const w = new Worker(WORKER_URL, { type: 'module', name: `heartbox-decoder-${i}` });
      const slot = { w, busy: 0 };
      w.onmessage = (ev) => this._done(slot, ev.data);
      w.onerror = (ev) => this._fail(slot, new Error(`decoder worker failed: ${ev.message || 'script error'}`));
      return slot;
    });
    this.pending = new Map();
    this.nextId = 1;
    this.decodeMs = 0; // CPU time spent decoding, summed over the workers
  }

  /**
   * Decode one frame in a pool worker.
   *
   * @param {string} ts transfer syntax UID
   * @param {Uint8Array} bytes the compressed frame (copied to the worker)
   * @param {number} rows Rows
   * @param {number} cols Columns
   * @param {string} name the file, for messages
   * @returns {Promise<Uint16Array>} the stored values
   */
  decode(ts, bytes, rows, cols, name) {
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy += 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.w.postMessage({ id, ts, bytes, rows, cols, name });
    });
  }

  _done(slot, msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    slot.busy -= 1;
    if (msg.error) p.reject(msg.user ? new DicomError(msg.error) : new Error(msg.error));
    else { this.decodeMs += msg.ms; p.resolve(msg.values); }
  }

  _fail(slot, err) {
    for (const [id, p] of this.pending) {
      if (p.slot === slot) { this.pending.delete(id); p.reject(err); }
    }
    slot.busy = 0;
  }

  terminate() {
    for (const s of this.workers) s.w.terminate();
    for (const p of this.pending.values()) p.reject(new Error('decode pool closed'));
    this.pending.clear();
  }
}
