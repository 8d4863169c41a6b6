// Axial, coronal and sagittal previews of the scan with the heart box drawn on them.
//
// The preview volume is (z, y, x) HU, point-sampled every `stride` pixels
// in-plane (y = image row, x = image column; z index 0 = most inferior).
// Coronal and sagittal views put the most superior slice at the TOP and use the
// physical aspect ratio (dz vs. dy/dx). Box ranges are half-open voxel ranges;
// their edges are drawn at voxel edges.

const WINDOW = { level: 40, width: 400 }; // soft-tissue window (HU)

function gray(hu) {
  const lo = WINDOW.level - WINDOW.width / 2;
  const v = ((hu - lo) * 255) / WINDOW.width;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function render(canvas, cols, rows, pixel, pxW, pxH, box) {
  const off = document.createElement('canvas');
  off.width = cols; off.height = rows;
  const ctx0 = off.getContext('2d');
  const img = ctx0.createImageData(cols, rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const g = gray(pixel(r, c));
    const i = 4 * (r * cols + c);
    img.data[i] = img.data[i + 1] = img.data[i + 2] = g; img.data[i + 3] = 255;
  }
  ctx0.putImageData(img, 0, 0);
  // fit into 256 px on the long side with the physical aspect ratio
  const wMm = cols * pxW; const hMm = rows * pxH;
  const scale = 256 / Math.max(wMm, hMm);
  canvas.width = Math.max(1, Math.round(wMm * scale));
  canvas.height = Math.max(1, Math.round(hMm * scale));
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  if (box) {
    const sx = canvas.width / cols; const sy = canvas.height / rows;
    ctx.strokeStyle = '#ffcc00'; ctx.lineWidth = 2;
    ctx.strokeRect(box.c0 * sx, box.r0 * sy, (box.c1 - box.c0) * sx, (box.r1 - box.r0) * sy);
  }
}

/**
 * Draw the three views.
 *
 * @param {object} preview {data: Int16Array, shape: [Z, pY, pX], stride}
 * @param {object} sector heartbox.sector/1 object
 * @param {{axial, coronal, sagittal}} canvases
 */
export function drawPreviews(preview, sector, canvases) {
  const [Z, pY, pX] = preview.shape;
  const s = preview.stride;
  const [dz, dy, dx] = sector.spacing_mm;
  const d = preview.data;
  const at = (z, y, x) => d[(z * pY + y) * pX + x];
  const v = sector.found ? sector.voxel : null;
  const mid = (r, n) => Math.min(n - 1, Math.floor((r[0] + r[1] - 1) / 2));
  const zc = v ? mid(v.z, Z) : Math.floor(Z / 2);
  const yc = v ? Math.min(pY - 1, Math.floor(mid(v.y, pY * s) / s)) : Math.floor(pY / 2);
  const xc = v ? Math.min(pX - 1, Math.floor(mid(v.x, pX * s) / s)) : Math.floor(pX / 2);
  // axial: rows = y, cols = x
  render(canvases.axial, pX, pY, (r, c) => at(zc, r, c), dx * s, dy * s,
    v && { r0: v.y[0] / s, r1: v.y[1] / s, c0: v.x[0] / s, c1: v.x[1] / s });
  // coronal: rows = z (superior at top), cols = x
  render(canvases.coronal, pX, Z, (r, c) => at(Z - 1 - r, yc, c), dx * s, dz,
    v && { r0: Z - v.z[1], r1: Z - v.z[0], c0: v.x[0] / s, c1: v.x[1] / s });
  // sagittal: rows = z (superior at top), cols = y
  render(canvases.sagittal, pY, Z, (r, c) => at(Z - 1 - r, c, xc), dy * s, dz,
    v && { r0: Z - v.z[1], r1: Z - v.z[0], c0: v.y[0] / s, c1: v.y[1] / s });
}
