// DICOM series → HU slices and geometry, in the browser (dicom-parser).
//
// Mirrors napari_heartbox's Python loader where the browser can:
//   * slices are sorted by ImagePositionPatient projected on the slice normal
//     (row cosine × column cosine), never by file name or InstanceNumber;
//   * z index 0 is the MOST INFERIOR slice (smallest patient S);
//   * arrays are (z, y, x): y = image row, x = image column;
//   * the 4×4 affine maps (z, y, x, 1) voxel CENTRES to DICOM LPS mm:
//       column x = row cosine × column spacing (PixelSpacing[1]),
//       column y = column cosine × row spacing (PixelSpacing[0]),
//       column z = mean step between slice positions (carries gantry-tilt shear),
//       translation = ImagePositionPatient of slice 0 (centre of its first pixel);
//   * spacing is (dz, dy, dx) mm, dz measured along the slice normal;
//   * HU = stored × RescaleSlope + RescaleIntercept, rounded half-to-even and
//     clipped to int16 (like numpy's rint + clip);
//   * a folder with several series: the axial CT series with the most slices
//     is used; the others, localizers, secondary captures, reformats and
//     non-image objects are left out with a warning.
// Compressed transfer syntaxes are refused with a message naming them.

import dicomParser from './vendor/dicom-parser/dicomParser.mjs';

export class DicomError extends Error {}

const UNCOMPRESSED = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
};
const COMPRESSED = {
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

function listNames(items, n = 5) {
  const names = items.slice(0, n).join(', ');
  return items.length > n ? `${names} and ${items.length - n} more` : names;
}

function floats(ds, tag, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const v = ds.floatString(tag, i);
    if (v === undefined || !Number.isFinite(v)) return null;
    out.push(v);
  }
  return out;
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const norm = (a) => Math.sqrt(dot(a, a));

/**
 * Parse the header of one DICOM file (the pixel data is not copied).
 *
 * @param {ArrayBuffer} buffer the whole file
 * @param {string} name file name (for messages)
 * @returns {object} slice record, or {error} when the file is not DICOM
 */
export function parseHeader(buffer, name) {
  const bytes = new Uint8Array(buffer);
  let ds;
  try {
    ds = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  } catch (e) {
    return { name, error: 'not a DICOM file' };
  }
  const ts = ds.string('x00020010') || '1.2.840.10008.1.2.1';
  const pix = ds.elements.x7fe00010;
  const imageType = (ds.string('x00080008') !== undefined)
    ? Array.from({ length: ds.numStringValues('x00080008') || 0 }, (_, i) => (ds.string('x00080008', i) || '').toUpperCase())
    : [];
  return {
    name,
    buffer,
    transferSyntax: ts,
    seriesUid: ds.string('x0020000e') || '(no SeriesInstanceUID)',
    studyUid: ds.string('x0020000d') || null,
    sopClass: ds.string('x00080016') || ds.string('x00020002') || '',
    modality: (ds.string('x00080060') || '').toUpperCase(),
    imageType,
    manufacturer: ds.string('x00080070') || null,
    description: ds.string('x0008103e') || null,
    rows: ds.uint16('x00280010'),
    cols: ds.uint16('x00280011'),
    frames: parseInt(ds.string('x00280008') || '1', 10) || 1,
    samples: ds.uint16('x00280002') || 1,
    bitsAllocated: ds.uint16('x00280100'),
    bitsStored: ds.uint16('x00280101'),
    pixelRepresentation: ds.uint16('x00280103') || 0,
    slope: ds.floatString('x00281053') ?? 1,
    intercept: ds.floatString('x00281052') ?? 0,
    ipp: floats(ds, 'x00200032', 3),
    iop: floats(ds, 'x00200037', 6),
    pixelSpacing: floats(ds, 'x00280030', 2),
    sliceThickness: ds.floatString('x00180050') ?? null,
    pixel: pix ? { offset: pix.dataOffset, length: pix.length, encapsulated: pix.length === 0xffffffff || !!pix.encapsulatedPixelData } : null,
  };
}

function exclusionReason(r) {
  if (!r.pixel) return 'no pixel data (not an image)';
  if (r.sopClass.startsWith(SECONDARY_CAPTURE)) return 'secondary capture';
  if (r.imageType.includes('LOCALIZER')) return 'localizer/scout';
  if (r.modality && r.modality !== 'CT') return `modality ${r.modality}`;
  if (!r.ipp || !r.iop || !r.pixelSpacing) return 'no ImagePositionPatient/ImageOrientationPatient/PixelSpacing';
  if (r.frames > 1) return `multi-frame image (${r.frames} frames)`;
  const n = cross(r.iop.slice(0, 3), r.iop.slice(3, 6));
  const a = n.map(Math.abs);
  if (!(a[2] >= a[0] && a[2] >= a[1])) return 'not axial (reformat)';
  return null;
}

/**
 * Choose the series, sort its slices and compute the grid.
 *
 * @param {object[]} records results of parseHeader
 * @returns {{slices: object[], shape: number[], spacing: number[], affine: number[][],
 *            info: object, warnings: string[]}}
 * @throws {DicomError} with a one-line message when nothing usable is left
 */
export function assembleSeries(records) {
  const warnings = [];
  const notDicom = records.filter((r) => r.error).map((r) => r.name);
  const dicom = records.filter((r) => !r.error);
  if (dicom.length === 0) {
    if (records.length === 0) throw new DicomError('No files selected: choose a DICOM folder or the DICOM files of one CT series.');
    throw new DicomError(`None of the ${records.length} selected files is a DICOM file (${listNames(notDicom)}).`);
  }
  if (notDicom.length) warnings.push(`Skipped ${notDicom.length} file(s) that are not DICOM: ${listNames(notDicom)}.`);

  const excluded = {};
  const usable = [];
  for (const r of dicom) {
    const why = exclusionReason(r);
    if (why) (excluded[why] ||= []).push(r);
    else usable.push(r);
  }
  if (usable.length === 0) {
    const first = dicom[0];
    const why = exclusionReason(first);
    if (why && why.startsWith('modality')) {
      throw new DicomError(`${first.name} is not a CT image (Modality ${first.modality}); napari-heartbox needs a chest CT series.`);
    }
    const parts = Object.entries(excluded).map(([w, rs]) => `${rs.length} ${w}`);
    throw new DicomError(`No axial CT image series among the ${dicom.length} DICOM files (${parts.join('; ')}).`);
  }
  for (const [why, rs] of Object.entries(excluded)) {
    warnings.push(`Left out ${rs.length} file(s): ${why} (${listNames(rs.map((r) => r.name), 3)}).`);
  }

  // group by SeriesInstanceUID; take the one with the most slices
  const groups = new Map();
  for (const r of usable) {
    if (!groups.has(r.seriesUid)) groups.set(r.seriesUid, []);
    groups.get(r.seriesUid).push(r);
  }
  const ordered = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  let [seriesUid, slices] = ordered[0];
  if (ordered.length > 1) {
    const others = ordered.slice(1).map(([uid, rs]) => `${uid} (${rs.length} slices)`);
    warnings.push(`Folder holds ${ordered.length} series; using ${seriesUid} (${slices.length} slices) and ignoring ${listNames(others, 4)}.`);
  }

  // transfer syntax: compressed data is refused, naming what is unsupported
  const compressed = slices.filter((r) => !(r.transferSyntax in UNCOMPRESSED) || r.pixel.encapsulated);
  if (compressed.length) {
    const ts = compressed[0].transferSyntax;
    const label = COMPRESSED[ts] || 'an unsupported transfer syntax';
    throw new DicomError(
      `${compressed.length} of ${slices.length} slices (e.g. ${compressed[0].name}) are compressed with ${label} (${ts}); ` +
      'the browser app reads only uncompressed DICOM (Explicit/Implicit VR Little Endian). ' +
      'Export the series uncompressed, or use napari-heartbox propose in Python.');
  }
  const bad = slices.find((r) => r.bitsAllocated !== 16 || r.samples !== 1);
  if (bad) {
    throw new DicomError(`${bad.name}: ${bad.samples} sample(s) of ${bad.bitsAllocated} bits per pixel is not supported (CT needs 1 sample of 16 bits).`);
  }

  // one image size per series (the most common one)
  const sizeCount = new Map();
  for (const r of slices) { const k = `${r.rows}x${r.cols}`; sizeCount.set(k, (sizeCount.get(k) || 0) + 1); }
  const size = [...sizeCount.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const wrongSize = slices.filter((r) => `${r.rows}x${r.cols}` !== size);
  if (wrongSize.length) {
    warnings.push(`Left out ${wrongSize.length} slice(s) whose size differs from ${size}: ${listNames(wrongSize.map((r) => r.name), 3)}.`);
    slices = slices.filter((r) => `${r.rows}x${r.cols}` === size);
  }

  // sort along the slice normal
  const ref = slices[0];
  const rowCos = ref.iop.slice(0, 3);
  const colCos = ref.iop.slice(3, 6);
  const n0 = cross(rowCos, colCos);
  const normal = n0.map((v) => v / norm(n0));
  for (const r of slices) r.d = dot(r.ipp, normal);
  slices.sort((a, b) => a.d - b.d);
  // z index 0 = most inferior: flip when the normal points inferior
  if (slices.length > 1 && slices[slices.length - 1].ipp[2] < slices[0].ipp[2]) slices.reverse();

  // duplicates (same position) keep the first file
  const tol = 1e-3;
  const dups = [];
  slices = slices.filter((r, i, arr) => {
    if (i > 0 && Math.abs(r.d - arr[i - 1].d) < tol) { dups.push(r.name); return false; }
    return true;
  });
  // (filter compared against the unfiltered neighbour, so triplicates are handled too)
  if (dups.length) warnings.push(`Dropped ${dups.length} slice(s) at duplicate positions: ${listNames(dups, 3)}.`);

  const Z = slices.length;
  const Y = ref.rows;
  const X = ref.cols;
  const dy = ref.pixelSpacing[0]; // row spacing (between rows)
  const dx = ref.pixelSpacing[1]; // column spacing
  let stepVec;
  let dz;
  if (Z > 1) {
    const first = slices[0].ipp;
    const last = slices[Z - 1].ipp;
    stepVec = [0, 1, 2].map((i) => (last[i] - first[i]) / (Z - 1));
    dz = Math.abs(dot(stepVec, normal));
    const steps = [];
    for (let i = 1; i < Z; i++) steps.push(Math.abs(slices[i].d - slices[i - 1].d));
    const sorted = [...steps].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const gaps = [];
    steps.forEach((s, i) => { if (s > 1.5 * median) gaps.push(`${s.toFixed(2)} mm after z=${i}`); });
    if (gaps.length) {
      warnings.push(`Missing slices: ${gaps.length} gap(s) larger than 1.5x the median spacing ${median.toFixed(3)} mm (${listNames(gaps, 3)}).`);
    } else if (sorted[sorted.length - 1] - sorted[0] > 0.01 * median + 1e-4) {
      warnings.push(`Non-uniform slice spacing: ${sorted[0].toFixed(3)}..${sorted[sorted.length - 1].toFixed(3)} mm.`);
    }
    const tiltCos = dot(stepVec, normal) / norm(stepVec);
    if (Math.abs(tiltCos) < 0.9999) {
      const deg = (Math.acos(Math.min(1, Math.abs(tiltCos))) * 180) / Math.PI;
      warnings.push(`Gantry tilt of ${deg.toFixed(2)} degrees: the grid is sheared.`);
    }
  } else {
    dz = ref.sliceThickness > 0 ? ref.sliceThickness : 1;
    stepVec = normal.map((v) => v * dz);
    warnings.push('Only one slice: the slice spacing is taken from SliceThickness.');
  }
  const o = slices[0].ipp;
  const affine = [0, 1, 2].map((i) => [stepVec[i], colCos[i] * dy, rowCos[i] * dx, o[i]]);
  affine.push([0, 0, 0, 1]);
  return {
    slices,
    shape: [Z, Y, X],
    spacing: [dz, dy, dx],
    affine,
    info: {
      series_uid: seriesUid.startsWith('(') ? null : seriesUid,
      study_uid: ref.studyUid,
      manufacturer: ref.manufacturer,
      description: ref.description,
      modality: 'CT',
    },
    warnings,
  };
}

// round half to even, like numpy.rint (only reached when slope/intercept are non-integer)
function rint(v) {
  const r = Math.round(v);
  return (Math.abs(v % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

/**
 * Write the HU values of one slice into ``out`` (int16, row-major y, x).
 *
 * HU = stored × slope + intercept, rounded half-to-even and clipped to int16.
 * Stored values honour PixelRepresentation and BitsStored (high bits masked,
 * sign-extended for signed data).
 */
export function sliceToHU(r, out) {
  const n = r.rows * r.cols;
  if (r.pixel.length < 2 * n) throw new DicomError(`${r.name}: pixel data is truncated (${r.pixel.length} bytes for ${r.rows}x${r.cols}).`);
  const bigEndian = r.transferSyntax === '1.2.840.10008.1.2.2';
  let stored;
  const byteOffset = r.pixel.offset;
  if (!bigEndian && byteOffset % 2 === 0) {
    stored = r.pixelRepresentation ? new Int16Array(r.buffer, byteOffset, n) : new Uint16Array(r.buffer, byteOffset, n);
  } else {
    const dv = new DataView(r.buffer, byteOffset, 2 * n);
    stored = r.pixelRepresentation ? new Int16Array(n) : new Uint16Array(n);
    for (let i = 0; i < n; i++) stored[i] = r.pixelRepresentation ? dv.getInt16(2 * i, !bigEndian) : dv.getUint16(2 * i, !bigEndian);
  }
  const bits = r.bitsStored || 16;
  if (bits < 16) {
    const mask = (1 << bits) - 1;
    const sign = 1 << (bits - 1);
    const copy = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let v = stored[i] & mask;
      if (r.pixelRepresentation && (v & sign)) v -= 1 << bits;
      copy[i] = v;
    }
    stored = copy;
  }
  const s = r.slope;
  const b = r.intercept;
  if (s === 1 && Number.isInteger(b)) {
    for (let i = 0; i < n; i++) {
      const v = stored[i] + b;
      out[i] = v < -32768 ? -32768 : v > 32767 ? 32767 : v;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = rint(stored[i] * s + b);
      out[i] = v < -32768 ? -32768 : v > 32767 ? 32767 : v;
    }
  }
}
