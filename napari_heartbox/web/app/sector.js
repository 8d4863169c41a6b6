// The heartbox.sector/1 JSON object, exactly as Python's Sector.to_dict()
// writes it (napari_heartbox/sector.py): same keys, same order, same rounding.
//
// Voxel ranges are HALF-OPEN [start, stop) in (z, y, x) order. patient_mm is
// the LPS bounding box of the 8 box corners taken at voxel EDGES: voxel i
// spans index [i - 0.5, i + 0.5], so a range [a, b) spans [a - 0.5, b - 0.5].
// The affine maps (z, y, x, 1) voxel centres to LPS mm.

export const SCHEMA_ID = 'heartbox.sector/1';

// Python's round(v, n) for finite floats (ties are practically never exact)
export function roundTo(v, n) {
  const r = Number(Number(v).toFixed(n));
  return Object.is(r, -0) ? 0 : r;
}

export function indexToLps(affine, idx) {
  return [0, 1, 2].map((i) => affine[i][0] * idx[0] + affine[i][1] * idx[1] + affine[i][2] * idx[2] + affine[i][3]);
}

/**
 * Build the heartbox.sector/1 object.
 *
 * @param {object} s {found, z:[z0,z1], y, x, confidence, shape, spacing, affine, seriesUid, modelSha256}
 */
export function sectorToDict(s) {
  let patient = null;
  if (s.found) {
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    for (const bz of [0, 1]) for (const by of [0, 1]) for (const bx of [0, 1]) {
      const p = indexToLps(s.affine, [s.z[bz] - 0.5, s.y[by] - 0.5, s.x[bx] - 0.5]);
      for (let i = 0; i < 3; i++) { lo[i] = Math.min(lo[i], p[i]); hi[i] = Math.max(hi[i], p[i]); }
    }
    patient = { min: lo.map((v) => roundTo(v, 4)), max: hi.map((v) => roundTo(v, 4)) };
  }
  return {
    schema: SCHEMA_ID,
    found: !!s.found,
    confidence: roundTo(s.confidence, 6),
    voxel: s.found ? { z: [...s.z], y: [...s.y], x: [...s.x] } : null,
    patient_mm: patient,
    shape: [...s.shape],
    spacing_mm: s.spacing.map((v) => roundTo(v, 6)),
    affine_lps: s.affine.map((row) => row.map((v) => roundTo(v, 6))),
    series_uid: s.seriesUid ?? null,
    model_sha256: s.modelSha256 ?? null,
    ...(s.note ? { note: s.note } : {}),
  };
}
