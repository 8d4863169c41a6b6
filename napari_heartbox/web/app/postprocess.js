// Per-cell heart probabilities → heart box: the JavaScript port of
// napari_heartbox/model/postprocess.py, following docs/model.md §4 step by step.
//
// Conventions: prob is float32 [Z, 64, 64] in the volume's (z, y, x) order
// (z index 0 = most inferior slice). Cell (r, c) covers pixel rows
// [r·kH, (r+1)·kH) and columns [c·kW, (c+1)·kW), kH = ceil(H/64),
// kW = ceil(W/64); cells starting at or beyond H/W are padding and ignored.
// Edge coordinates: voxel (cell, slice) i spans [i, i+1), so a half-open range
// [a, b) has its faces at a and b. The threshold comparison is in float32;
// everything after it is float64 in the documented order; rounding to an edge
// is floor(v + 0.5).

export const CELLS = 64;

/** Valid (non-padding) cell rows and columns of an H×W image: ceil(H/kH), ceil(W/kW). */
export function validCells(H, W) {
  const kH = Math.ceil(H / CELLS);
  const kW = Math.ceil(W / CELLS);
  return [Math.ceil(H / kH), Math.ceil(W / kW)];
}

function toRange(loEdge, hiEdge, n) {
  let a = Math.min(Math.max(Math.floor(loEdge + 0.5), 0), n);
  let b = Math.min(Math.max(Math.floor(hiEdge + 0.5), 0), n);
  if (b <= a) {
    if (a >= n) a = n - 1;
    b = a + 1;
  }
  return [a, b];
}

function sigmoid(t) {
  if (t >= 0) return 1 / (1 + Math.exp(-t));
  const e = Math.exp(t);
  return e / (1 + e);
}

/**
 * Largest 6-connected component of the positive cells.
 *
 * @param {Uint8Array} mask [Z*64*64] 1 = positive
 * @returns {{cells: Int32Array}} flat indices of the component's cells in raster
 *   order (empty when no cell is positive). Ties → the component whose first
 *   cell in raster order comes first (only a strictly larger one replaces it).
 */
export function largestComponent(mask, nz) {
  const G = CELLS;
  const total = nz * G * G;
  const label = new Int32Array(total); // 0 = unvisited
  const stack = new Int32Array(total);
  let best = 0;
  let bestSize = 0;
  let next = 0;
  for (let start = 0; start < total; start++) {
    if (!mask[start] || label[start]) continue;
    next += 1;
    let size = 0;
    let sp = 0;
    stack[sp++] = start;
    label[start] = next;
    while (sp > 0) {
      const i = stack[--sp];
      size += 1;
      const c = i % G;
      const r = ((i - c) / G) % G;
      const z = (i - c - r * G) / (G * G);
      // the 6 face neighbours
      if (c > 0 && mask[i - 1] && !label[i - 1]) { label[i - 1] = next; stack[sp++] = i - 1; }
      if (c < G - 1 && mask[i + 1] && !label[i + 1]) { label[i + 1] = next; stack[sp++] = i + 1; }
      if (r > 0 && mask[i - G] && !label[i - G]) { label[i - G] = next; stack[sp++] = i - G; }
      if (r < G - 1 && mask[i + G] && !label[i + G]) { label[i + G] = next; stack[sp++] = i + G; }
      if (z > 0 && mask[i - G * G] && !label[i - G * G]) { label[i - G * G] = next; stack[sp++] = i - G * G; }
      if (z < nz - 1 && mask[i + G * G] && !label[i + G * G]) { label[i + G * G] = next; stack[sp++] = i + G * G; }
    }
    if (size > bestSize) { bestSize = size; best = next; }
  }
  const cells = new Int32Array(bestSize);
  if (best) {
    let k = 0;
    for (let i = 0; i < total && k < bestSize; i++) if (label[i] === best) cells[k++] = i;
  }
  return { cells };
}

// (edge, p_in, p_out) of one in-plane face; axis 1 = rows, 2 = columns.
// p_in = max prob over the component's cells on its outermost row/column;
// p_out = max prob over the cells one step further out next to them (0 when
// that step leaves the valid cells).
function faceProbs(prob, cells, axis, side, nValid) {
  const G = CELLS;
  const coord = (i) => (axis === 1 ? ((i / G) | 0) % G : i % G);
  let edge = side === 'lo' ? G : -1;
  for (let k = 0; k < cells.length; k++) {
    const v = coord(cells[k]);
    if (side === 'lo' ? v < edge : v > edge) edge = v;
  }
  const step = side === 'lo' ? -1 : 1;
  const nb = edge + step;
  const hasOut = nb >= 0 && nb < nValid;
  const offset = step * (axis === 1 ? G : 1);
  let pIn = -Infinity;
  let pOut = hasOut ? -Infinity : 0;
  for (let k = 0; k < cells.length; k++) {
    const i = cells[k];
    if (coord(i) !== edge) continue;
    pIn = Math.max(pIn, prob[i]);
    if (hasOut) pOut = Math.max(pOut, prob[i + offset]);
  }
  return [edge, pIn, pOut];
}

/**
 * The heart box from the model output (docs/model.md §4).
 *
 * @param {Float32Array} prob [Z*64*64]
 * @param {number[]} shape [Z, H, W]
 * @param {number[]} spacing [dz, dy, dx] mm
 * @param {object} config the model card's postprocess section
 * @param {number} [marginMm] default config.default_margin_mm
 * @returns {{found: boolean, confidence: number, z?: number[], y?: number[], x?: number[],
 *            cells: number, volume_ml: number, mean_prob: number}}
 */
export function sectorFromProb(prob, shape, spacing, config, marginMm) {
  const G = CELLS;
  const [nz, H, W] = shape;
  const [dz, dy, dx] = spacing;
  if (prob.length !== nz * G * G) throw new Error(`prob has ${prob.length} values, expected ${nz}x${G}x${G}`);
  const kH = Math.ceil(H / G);
  const kW = Math.ceil(W / G);
  const [rowsValid, colsValid] = validCells(H, W);
  // step 1: positive cells (float32 comparison)
  const thr = Math.fround(config.threshold);
  const mask = new Uint8Array(nz * G * G);
  for (let z = 0; z < nz; z++) for (let r = 0; r < rowsValid; r++) for (let c = 0; c < colsValid; c++) {
    const i = (z * G + r) * G + c;
    if (prob[i] >= thr) mask[i] = 1;
  }
  // step 2: largest component
  const { cells: comp } = largestComponent(mask, nz);
  const cells = comp.length;
  if (cells === 0) return { found: false, confidence: 0, cells: 0, volume_ml: 0, mean_prob: 0 };
  // step 3: features, confidence, found
  const cellMl = (dz * (kH * dy) * (kW * dx)) / 1000;
  const volumeMl = cells * cellMl;
  let sum = 0;
  for (let k = 0; k < cells; k++) sum += prob[comp[k]]; // raster order
  const meanProb = sum / cells;
  const cc = config.confidence;
  const confidence = sigmoid(cc.bias + cc.w_mean_prob * meanProb + cc.w_log_volume_ml * Math.log(Math.max(volumeMl, 1e-3)));
  const feats = { cells, volume_ml: volumeMl, mean_prob: meanProb, confidence };
  // too small, or not confident enough (min_confidence may be absent: then 0)
  if (volumeMl < config.min_heart_volume_ml || confidence < (config.min_confidence ?? 0)) return { found: false, ...feats };
  const m = marginMm ?? config.default_margin_mm;
  // step 4: z faces (whole slices); cells are in raster order, so z is sorted
  const zmin = Math.floor(comp[0] / (G * G));
  const zmax = Math.floor(comp[cells - 1] / (G * G));
  const zr = toRange(zmin - m / dz, zmax + 1 + m / dz, nz);
  // step 5: in-plane faces with sub-cell precision; step 6: ranges
  const ranges = [];
  for (const [axis, k, n, sp, valid] of [[1, kH, H, dy, rowsValid], [2, kW, W, dx, colsValid]]) {
    const [cLo, pinLo, poutLo] = faceProbs(prob, comp, axis, 'lo', valid);
    const [cHi, pinHi, poutHi] = faceProbs(prob, comp, axis, 'hi', valid);
    const loCell = (cLo + 1) - (pinLo + poutLo);
    const hiCell = cHi + (pinHi + poutHi);
    const loPx = Math.min(loCell * k, n) - m / sp;
    const hiPx = Math.min(hiCell * k, n) + m / sp;
    ranges.push(toRange(loPx, hiPx, n));
  }
  return { found: true, z: zr, y: ranges[0], x: ranges[1], ...feats };
}
