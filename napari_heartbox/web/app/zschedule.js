// Coarse-to-fine slice schedule: the JavaScript port of
// napari_heartbox/model/zschedule.py (docs/model.md, "Slice schedule").
//
// 1. Coarse: score z = 0, step, 2·step, … and the last slice, step =
//    max(1, floor(z_step_mm / dz + 1e-6)). A slice is positive when one of its
//    valid (non-padding) cells has prob >= threshold (float32 comparison).
// 2. Refine: between consecutive coarse slices a < b of differing positivity,
//    score the slices strictly between them and reach = floor(z_refine_mm/dz
//    + 0.5) slices beyond them on the positive side (b+1 … b+reach, or
//    a-reach … a-1), clipped to the volume; with z_fine_mm only the fine grid
//    (z % fine == 0, fine = the largest divisor of step with fine·dz <=
//    z_fine_mm), the reach's far end rounded outwards to that grid.
// 3. Final (fine > 1 only): every slice between two consecutive scored slices
//    (coarse or refined) of differing positivity.
// 4. Fill: every slice not scored copies the nearest scored slice (ties → the
//    lower slice); sectorFromProb then runs unchanged on the full [Z,64,64].
//
// z context: the network scores slice z from slices z-k, z, z+k (clamped to
// [0, Z-1]), k = step * max(1, floor(z_context_mm / (step*dz) + 0.5)), so a
// coarse slice's context is coarse (contextOffset, contextRows), and a fine
// slice's context is on the fine grid.
//
// SliceScheduler applies these rules while the slices stream in, in z order:
// a slice is scored once its upper context slice has arrived, the final step
// runs below the lowest slice a later refinement could still reach, and only
// the slices that later scoring can still read stay in memory; it scores
// exactly the slices the Python schedule scores.

import { CELLS, validCells } from './postprocess.js';

export function zStep(dz, config) {
  const mm = Number(config.z_step_mm || 0);
  if (!(mm > 0) || !(dz > 0)) return 1;
  return Math.max(1, Math.floor(mm / dz + 1e-6));
}

/** The largest divisor d of n with d·dz <= mm (at least 1). */
function largestDivisorWithin(n, dz, mm) {
  let best = 1;
  for (let d = 1; d <= n; d++) if (n % d === 0 && d * dz <= mm + 1e-6) best = d;
  return best;
}

/** Slices between the refinement's samples: 1 unless z_fine_mm is set. */
export function fineStep(dz, config) {
  const mm = Number(config.z_fine_mm || 0);
  if (!(mm > 0) || !(dz > 0)) return 1;
  return largestDivisorWithin(zStep(dz, config), dz, mm);
}

export function refineReach(dz, config) {
  const mm = Number(config.z_refine_mm || 0);
  if (!(mm > 0) || !(dz > 0)) return 0;
  return Math.floor(mm / dz + 0.5);
}

export function contextOffset(dz, config) {
  const step = zStep(dz, config);
  const mm = Number(config.z_context_mm || 0);
  if (!(mm > 0)) return 0; // a per-slice model: each slice alone
  if (!(dz > 0)) return 1;
  return step * Math.max(1, Math.floor(mm / (step * dz) + 0.5));
}

/** The context row [z-k, z, z+k] of slice z, clamped to [0, Z-1]. */
export function contextRow(z, Z, k) {
  return [Math.max(z - k, 0), z, Math.min(z + k, Z - 1)];
}

/**
 * The slices that the context rows of `zs` read (sorted, unique) and the rows
 * as positions in that list: the model's `hu` slices and `context` input.
 */
export function gatherRows(zs, Z, k) {
  const rows = zs.map((z) => contextRow(z, Z, k));
  const needed = [...new Set(rows.flat())].sort((a, b) => a - b);
  const pos = new Map(needed.map((z, i) => [z, i]));
  const local = new BigInt64Array(rows.length * 3);
  rows.forEach((r, i) => r.forEach((z, j) => { local[i * 3 + j] = BigInt(pos.get(z)); }));
  return { needed, local };
}

/** Does slice z of prob [Z*64*64] have a valid cell >= threshold (float32)? */
export function slicePositive(prob, z, rowsValid, colsValid, threshold) {
  const G = CELLS;
  const thr = Math.fround(threshold);
  for (let r = 0; r < rowsValid; r++) {
    const base = (z * G + r) * G;
    for (let c = 0; c < colsValid; c++) if (prob[base + c] >= thr) return true;
  }
  return false;
}

/**
 * Streams slices through the model by the schedule.
 *
 * @param {number[]} shape [Z, H, W]
 * @param {number} dz slice spacing (mm)
 * @param {object} config the model card's postprocess section
 * @param {(data: Int16Array, n: number, context: BigInt64Array, m: number) => Promise<Float32Array>} score
 *   scores m slices given n H×W slices (`data`) and m context rows (positions
 *   in `data` of z-k, z, z+k); returns m×64×64 probabilities
 * @param {number} maxBatch slices scored per score() call at most
 */
export class SliceScheduler {
  constructor(shape, dz, config, score, maxBatch) {
    const [Z, H, W] = shape;
    Object.assign(this, { Z, H, W, config, score, maxBatch: Math.max(1, maxBatch | 0) });
    this.step = zStep(dz, config);
    this.reach = refineReach(dz, config);
    this.fine = fineStep(dz, config);
    this.k = contextOffset(dz, config);
    [this.rowsValid, this.colsValid] = validCells(H, W);
    this.prob = new Float32Array(Z * CELLS * CELLS);
    this.ran = new Uint8Array(Z);
    this.ranRefined = new Uint8Array(Z); // scored by steps 1-2 (the final step looks at these)
    this.finalFrom = 0; // the final step has looked at the slices below this
    this.finalLast = -1; // the highest slice below finalFrom scored by steps 1-2
    this.want = new Uint8Array(Z);
    this.history = []; // chunks {z0, n, data} still needed for scoring
    this.arrived = 0; // slices [0, arrived) have been pushed
    this.nextCoarse = 0; // coarse slices below this have been checked for transitions
    this.last = null; // previous coarse slice {z, pos}
    this.nRan = 0;
    this.prepare = null; // optional async (zs) => void, awaited before slices zs are read
  }

  isCoarse(z) { return z % this.step === 0 || z === this.Z - 1; }

  slice(z) {
    const px = this.H * this.W;
    for (const c of this.history) {
      if (z < c.z0 || z >= c.z0 + c.n) continue;
      const k = z - c.z0;
      if (typeof c.data !== 'function') return c.data.subarray(k * px, (k + 1) * px);
      // converted on demand, once: a slice may be read as a centre and as a context slice
      c.done ??= new Map();
      if (!c.done.has(k)) c.done.set(k, c.data(k));
      return c.done.get(k);
    }
    throw new Error(`slice ${z} is no longer in memory (schedule bug)`);
  }

  /** Is slice z in memory as HU already (a later read costs nothing)? */
  isConverted(z) {
    for (const c of this.history) {
      if (z >= c.z0 && z < c.z0 + c.n) return typeof c.data !== 'function' || !!c.done?.has(z - c.z0);
    }
    return false;
  }

  async runList(zs) {
    const px = this.H * this.W;
    const G2 = CELLS * CELLS;
    for (let i = 0; i < zs.length; i += this.maxBatch) {
      const part = zs.slice(i, i + this.maxBatch);
      const { needed, local } = gatherRows(part, this.Z, this.k);
      if (this.prepare) await this.prepare(needed); // e.g. decode compressed slices in parallel
      const buf = new Int16Array(needed.length * px);
      needed.forEach((z, j) => buf.set(this.slice(z), j * px));
      const p = await this.score(buf, needed.length, local, part.length);
      part.forEach((z, j) => { this.prob.set(p.subarray(j * G2, (j + 1) * G2), z * G2); this.ran[z] = 1; });
      this.nRan += part.length;
    }
  }

  /**
   * Add the next chunk of n slices starting at z0 (z order, contiguous).
   * `data` is their HU (Int16Array n×H×W) or a function k → HU of slice k
   * (H×W), called only for the slices that are read, once each.
   */
  async push(z0, n, data) {
    const { Z } = this;
    this.history.push({ z0, n, data });
    this.arrived = z0 + n;
    // slices whose upper context slice has arrived can be scored
    const ready = this.arrived >= Z ? Z - 1 : this.arrived - 1 - this.k;
    const wanted = (z) => (this.isCoarse(z) || this.want[z]) && !this.ran[z];
    const first = [];
    const from = this.nextCoarse; // refinements still pending lie at or above it
    for (let z = from; z <= ready; z++) if (wanted(z)) first.push(z);
    await this.runRefined(first);
    const f = this.fine;
    for (let z = from; z <= ready; z++) {
      if (!this.isCoarse(z)) continue;
      const pos = slicePositive(this.prob, z, this.rowsValid, this.colsValid, this.config.threshold);
      if (this.last && this.last.pos !== pos) {
        const a = this.last.z;
        // the reach's far end on the fine grid, rounded outwards
        const [lo, hi] = pos
          ? [a + 1, Math.min(Math.ceil((z + this.reach) / f) * f, Z - 1)]
          : [Math.max(Math.floor((a - this.reach) / f) * f, 0), z - 1];
        for (let k = lo; k <= hi; k++) if (!this.isCoarse(k) && k % f === 0) this.want[k] = 1;
      }
      this.last = { z, pos };
    }
    this.nextCoarse = Math.max(this.nextCoarse, ready + 1);
    // refinements found now reach down to the coarse slice before `from`, - reach
    const more = [];
    const down = Math.floor((from - this.step - this.reach) / f) * f;
    for (let z = Math.max(0, down); z <= ready; z++) if (this.want[z] && !this.ran[z]) more.push(z);
    await this.runRefined(more);
    if (f > 1) await this.runFinal(this.arrived >= Z ? Z : Math.min(ready + 1, this.lowestFutureRefine()));
    // keep what later scoring can read: a refinement reaches back to the last
    // coarse slice - reach (rounded down to the fine grid), the final step (fine
    // grid only) one coarse step below the slices it has not looked at, and
    // each its context k further
    const finalFrom = f > 1 ? this.finalFrom - this.step : Infinity;
    const keepFrom = Math.min(this.lowestFutureRefine(), this.nextCoarse, finalFrom) - this.k;
    this.history = this.history.filter((c) => c.z0 + c.n > keepFrom);
  }

  async runRefined(zs) {
    await this.runList(zs);
    for (const z of zs) this.ranRefined[z] = 1;
  }

  /** The lowest slice a refinement found by a later coarse slice could take. */
  lowestFutureRefine() {
    const lastZ = this.last ? this.last.z : 0;
    return Math.floor((lastZ - this.reach) / this.fine) * this.fine;
  }

  /** Step 3 on the slices below `upTo`, whose steps 1-2 are all done. */
  async runFinal(upTo) {
    const { ranRefined, prob, rowsValid, colsValid } = this;
    const thr = this.config.threshold;
    const fin = [];
    let p = this.finalLast;
    let pPos = p >= 0 && slicePositive(prob, p, rowsValid, colsValid, thr);
    for (let z = this.finalFrom; z < upTo; z++) {
      if (!ranRefined[z]) continue;
      const pos = slicePositive(prob, z, rowsValid, colsValid, thr);
      if (p >= 0 && z - p > 1 && pPos !== pos) for (let j = p + 1; j < z; j++) fin.push(j);
      p = z;
      pPos = pos;
    }
    this.finalLast = p;
    this.finalFrom = Math.max(this.finalFrom, upTo);
    await this.runList(fin);
  }
  /** After the last chunk: the filled prob [Z*64*64] and the scored slice count. */
  finish() {
    const { Z, ran, prob } = this;
    const G2 = CELLS * CELLS;
    for (let z = 0; z < Z; z++) if (this.want[z] && !ran[z]) throw new Error(`slice ${z} was never scored (schedule bug)`);
    // fill: nearest scored slice, ties → the lower one
    let prev = -1;
    let next = 0;
    for (let z = 0; z < Z; z++) {
      if (ran[z]) { prev = z; continue; }
      if (next <= z) { next = z + 1; while (next < Z && !ran[next]) next++; }
      const src = prev >= 0 && (next >= Z || z - prev <= next - z) ? prev : next;
      prob.copyWithin(z * G2, src * G2, (src + 1) * G2);
    }
    this.history = [];
    return { prob, slicesRun: this.nRan };
  }
}

/**
 * The slices the coarse step (step 1) reads: every coarse slice and its
 * context rows. They are known before any slice is scored, so a compressed
 * series can have them decoded ahead, in parallel (worker.js).
 *
 * @returns {Uint8Array} 1 for each slice z in [0, Z) that step 1 reads
 */
export function coarseReads(Z, dz, config) {
  const step = zStep(dz, config);
  const k = contextOffset(dz, config);
  const out = new Uint8Array(Z);
  for (let z = 0; z < Z; z++) {
    if (z % step === 0 || z === Z - 1) for (const r of contextRow(z, Z, k)) out[r] = 1;
  }
  return out;
}
