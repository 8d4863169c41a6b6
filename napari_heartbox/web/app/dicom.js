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
//     non-image objects are left out with a warning;
//   * an enhanced (multi-frame) CT file gives one slice per frame, placed by its
//     per-frame functional groups (per-frame item before the shared one, then
//     the top-level attribute), as io/dicom_headers.py _enhanced_frames.
// Transfer syntaxes: uncompressed little/big endian; deflated (inflated here
// before parsing); JPEG Lossless, JPEG-LS, JPEG 2000, HTJ2K and RLE frames are
// kept compressed until a worker decodes them (codecs.js). Lossy 8/12-bit JPEG
// (Baseline/Extended) is refused with a message naming it.

import dicomParser from './vendor/dicom-parser/dicomParser.mjs';
import { DicomError } from './errors.js';
import { COMPRESSED_SYNTAXES, UNSUPPORTED_SYNTAXES } from './codecs.js';

export { DicomError };

const UNCOMPRESSED = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian', // inflated before parsing
};
const DEFLATED = '1.2.840.10008.1.2.1.99';
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

// the first item of a sequence element, or null
function firstItem(ds, tag) {
  const el = ds && ds.elements[tag];
  return el && el.items && el.items.length ? el.items[0].dataSet : null;
}

// first item of a functional-group macro: per-frame group before the shared one
function functional(tag, frameItem, sharedItem) {
  return firstItem(frameItem, tag) || firstItem(sharedItem, tag);
}

class NeedInflate extends Error {
  constructor(position) { super('deflated'); this.position = position; }
}

/**
 * Where the deflated data set of a Deflated Explicit VR Little Endian file
 * starts (right after its file meta), or null when the file is not deflated.
 *
 * @param {ArrayBuffer} buffer the file, or at least its file meta
 * @returns {number|null}
 */
export function deflatedAt(buffer) {
  try {
    dicomParser.parseDicom(new Uint8Array(buffer), {
      untilTag: 'x00080005',
      inflater: (_bytes, pos) => { throw new NeedInflate(pos); },
    });
  } catch (e) {
    if (e instanceof NeedInflate) return e.position;
  }
  return null;
}

// raw deflate (RFC 1951) → bytes; rejects with the decompressor's own message
async function inflateRaw(bytes) {
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

/**
 * The bytes of a deflated file with its data set inflated (the file meta kept
 * as it is), with the browser's DecompressionStream('deflate-raw').
 *
 * @param {ArrayBuffer} buffer the whole file
 * @param {number} position deflatedAt(buffer)
 * @param {string} name the file, for messages
 * @returns {Promise<ArrayBuffer>}
 */
export async function inflateDataset(buffer, position, name) {
  const data = new Uint8Array(buffer, position);
  let inflated;
  try {
    inflated = await inflateRaw(data);
  } catch (e) {
    // bytes after the end of the deflate stream (padding: pydicom's test file has 8) are
    // ignored, as zlib does in Python. DecompressionStream fails on them and drops its
    // output, so inflate again without them; any other error refuses the file
    const why = String((e && e.message) || e).split('\n')[0];
    for (let cut = 1; !inflated && /junk/i.test(why) && cut <= 64 && cut < data.length; cut++) {
      inflated = await inflateRaw(data.subarray(0, data.length - cut)).catch(() => null);
    }
    if (!inflated) throw new DicomError(`${name}: the deflated data set cannot be inflated (${why}).`);
  }
  const out = new Uint8Array(position + inflated.length);
  out.set(new Uint8Array(buffer, 0, position));
  out.set(inflated, position);
  return out.buffer;
}

/**
 * Parse the header of one DICOM file (the pixel data is not copied).
 *
 * @param {ArrayBuffer} buffer the whole file (for a deflated file: inflateDataset's result)
 * @param {string} name file name (for messages)
 * @returns {object} slice record, or {error} when the file is not DICOM. An
 *   enhanced multi-frame file has `perFrame` set; frameRecords() makes one
 *   slice record per frame.
 */
export function parseHeader(buffer, name) {
  const bytes = new Uint8Array(buffer);
  let ds;
  let base = 0; // where the data set starts in `bytes` (dicom-parser's offsets count from there)
  try {
    // a deflated file reaches here already inflated (inflateDataset): its data set
    // is handed on as it is, from where the file meta ends
    ds = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010', inflater: (b, pos) => { base = pos; return b.subarray(pos); } });
  } catch (e) {
    return { name, error: 'not a DICOM file' };
  }
  // (the file meta's values cannot be read through ds once the data set was
  // inflated: its offsets count from the data set; the syntax is known then)
  const ts = base ? DEFLATED : (ds.string('x00020010') || '1.2.840.10008.1.2.1');
  const pix = ds.elements.x7fe00010;
  const imageType = (ds.string('x00080008') !== undefined)
    ? Array.from({ length: ds.numStringValues('x00080008') || 0 }, (_, i) => (ds.string('x00080008', i) || '').toUpperCase())
    : [];
  const frames = parseInt(ds.string('x00280008') || '1', 10) || 1;
  const rec = {
    name,
    buffer,
    transferSyntax: ts,
    seriesUid: ds.string('x0020000e') || '(no SeriesInstanceUID)',
    sopClass: ds.string('x00080016') || ds.string('x00020002') || '',
    modality: (ds.string('x00080060') || '').toUpperCase() || null,
    imageType,
    manufacturer: ds.string('x00080070') || null,
    rows: ds.uint16('x00280010'),
    instanceNumber: parseInt(ds.string('x00200013') || '0', 10) || 0,
    seriesNumber: Number.isFinite(parseInt(ds.string('x00200011'), 10)) ? parseInt(ds.string('x00200011'), 10) : null,
    tilt: ds.floatString('x00181120') ?? null,
    cols: ds.uint16('x00280011'),
    frames,
    frame: null, // index of this slice's frame in a multi-frame file
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
    pixel: pix ? { offset: base + pix.dataOffset, length: pix.length, encapsulated: pix.length === 0xffffffff || !!pix.encapsulatedPixelData } : null,
  };
  if (frames > 1 || ds.elements.x52009230) rec.perFrame = enhancedFrames(ds, rec);
  return rec;
}

const MAX_FRAMES = 20000; // as io/dicom_headers.py MAX_FRAMES

// geometry and rescale of each frame of an enhanced image (io/dicom_headers.py _enhanced_frames)
function enhancedFrames(ds, rec) {
  const n = rec.frames;
  if (!(n >= 1 && n <= MAX_FRAMES)) return { error: `NumberOfFrames ${n} is outside 1..${MAX_FRAMES}` };
  const shared = firstItem(ds, 'x52009229');
  const perFrame = ds.elements.x52009230?.items || [];
  const out = [];
  for (let i = 0; i < n; i++) {
    const fi = i < perFrame.length ? perFrame[i].dataSet : null;
    const pos = functional('x00209113', fi, shared);
    const ori = functional('x00209116', fi, shared);
    const meas = functional('x00289110', fi, shared);
    const pvt = functional('x00289145', fi, shared);
    out.push({
      ipp: floats(pos || ds, 'x00200032', 3),
      iop: floats(ori || ds, 'x00200037', 6),
      pixelSpacing: meas ? floats(meas, 'x00280030', 2) : null,
      sliceThickness: meas ? (meas.floatString('x00180050') ?? null) : null,
      slope: (pvt || ds).floatString('x00281053') ?? 1,
      intercept: (pvt || ds).floatString('x00281052') ?? 0,
    });
  }
  return { frames: out };
}

/**
 * The slice records of one parsed file: itself, or one per frame of an
 * enhanced multi-frame image (named "<file> frame <k>", k from 1).
 *
 * @param {object} r a parseHeader result
 * @returns {object[]}
 */
export function frameRecords(r) {
  if (r.error || !r.perFrame) return [r];
  if (r.perFrame.error) return [{ name: r.name, error: r.perFrame.error }];
  const n = r.perFrame.frames.length;
  if (r.pixel && !r.pixel.encapsulated && r.transferSyntax in UNCOMPRESSED && r.rows && r.cols) {
    const have = Math.floor(r.pixel.length / (2 * r.rows * r.cols));
    if (have < n) return [{ name: r.name, error: `NumberOfFrames ${n} but the pixel data holds ${have} frame(s) of ${r.rows}x${r.cols}` }];
  }
  const frameBytes = 2 * r.rows * r.cols;
  return r.perFrame.frames.map((f, i) => ({
    ...r, ...f, perFrame: undefined, frame: i, name: `${r.name} frame ${i + 1}`, fileName: r.name,
    // uncompressed: this frame's bytes; encapsulated: the whole value, split when read
    pixel: r.pixel && !r.pixel.encapsulated ? { ...r.pixel, offset: r.pixel.offset + i * frameBytes, length: frameBytes } : r.pixel,
  }));
}

/**
 * The compressed bytes of each frame of an encapsulated PixelData value
 * (DICOM PS3.5 A.4): a Basic Offset Table item, fragment items, a sequence
 * delimiter. One frame: all fragments joined. Several: split by the offset
 * table when it has one entry per frame, else one fragment per frame, else
 * at the fragments that start a JPEG (FFD8) or JPEG 2000 (FF4F) codestream.
 *
 * @param {Uint8Array} bytes holds the items from `offset` on
 * @param {number} offset where the first item (the offset table) starts
 * @param {number} nFrames NumberOfFrames
 * @param {string} name the file, for messages
 * @returns {Uint8Array[]} one array per frame (views when a frame is one fragment)
 */
export function encapsulatedFrames(bytes, offset, nFrames, name) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why) => new DicomError(`${name}: the compressed pixel data is damaged (${why}).`);
  let pos = offset;
  const item = () => {
    if (pos + 8 > bytes.length) throw bad('it ends inside an item header');
    const group = dv.getUint16(pos, true);
    const elem = dv.getUint16(pos + 2, true);
    const len = dv.getUint32(pos + 4, true);
    const at = pos;
    pos += 8;
    if (group !== 0xfffe || (elem !== 0xe000 && elem !== 0xe0dd)) throw bad(`unexpected tag (${group.toString(16)},${elem.toString(16)}) at byte ${at}`);
    if (elem === 0xe0dd) return null;
    if (len === 0xffffffff || pos + len > bytes.length) throw bad('a fragment runs past the end of the file');
    pos += len;
    return { at, start: at + 8, len };
  };
  const bot = item();
  if (!bot) throw bad('no offset table item');
  const frags = [];
  for (let f = item(); f; f = item()) frags.push(f);
  if (!frags.length) throw bad('no fragments');
  const join = (fs) => {
    if (fs.length === 1) return bytes.subarray(fs[0].start, fs[0].start + fs[0].len);
    const out = new Uint8Array(fs.reduce((a, f) => a + f.len, 0));
    let k = 0;
    for (const f of fs) { out.set(bytes.subarray(f.start, f.start + f.len), k); k += f.len; }
    return out;
  };
  if (nFrames <= 1) return [join(frags)];
  const base = frags[0].at;
  let groups = null;
  if (bot.len === 4 * nFrames) {
    const offs = Array.from({ length: nFrames }, (_, i) => dv.getUint32(bot.start + 4 * i, true));
    groups = offs.map((o, i) => frags.filter((f) => f.at - base >= o && (i + 1 === nFrames || f.at - base < offs[i + 1])));
  } else if (frags.length === nFrames) {
    groups = frags.map((f) => [f]);
  } else {
    const starts = frags.map((f) => bytes[f.start] === 0xff && (bytes[f.start + 1] === 0xd8 || bytes[f.start + 1] === 0x4f));
    groups = [];
    frags.forEach((f, i) => { if (starts[i] || !groups.length) groups.push([f]); else groups[groups.length - 1].push(f); });
  }
  if (groups.length !== nFrames || groups.some((g) => !g.length)) {
    throw bad(`${frags.length} fragments cannot be split into ${nFrames} frames`);
  }
  return groups.map(join);
}

const LOCALIZER_WORDS = ['LOCALIZER', 'SCOUT', 'TOPOGRAM', 'SURVIEW', 'SCANOGRAM'];
const CT_SOP_CLASSES = ['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.2.1', '1.2.840.10008.5.1.4.1.1.2.2'];
const DUP_TOL_MM = 0.01;

// 'axial' | 'coronal' | 'sagittal' from the dominant axis of the slice normal (LPS)
function orientationName(iop) {
  const n = cross(iop.slice(0, 3), iop.slice(3, 6)).map(Math.abs);
  const i = n[0] >= n[1] && n[0] >= n[2] ? 0 : n[1] >= n[2] ? 1 : 2;
  return ['sagittal', 'coronal', 'axial'][i];
}

// Same rules and order as io/dicom_select.py exclusion_reason
function exclusionReason(r) {
  if (r.modality && r.modality !== 'CT') return `modality ${r.modality} (not CT)`;
  if (!r.pixel || !r.rows) return `no pixel data (non-image object, SOP class ${r.sopClass})`;
  if (r.sopClass.startsWith(SECONDARY_CAPTURE)) return 'secondary capture (screen capture, not a CT slice)';
  if (!r.modality && !CT_SOP_CLASSES.includes(r.sopClass)) return `no Modality and SOP class ${r.sopClass} is not CT`;
  if (r.imageType.some((w) => LOCALIZER_WORDS.includes(w))) return 'localizer/scout image';
  if (r.samples !== 1) return `colour image (${r.samples} samples per pixel)`;
  if (!r.ipp || !r.iop) return 'no ImagePositionPatient/ImageOrientationPatient (cannot be placed in space)';
  const o = orientationName(r.iop);
  if (o !== 'axial') return `${o} orientation (a reformat, not axial slices)`;
  return null;
}

function nPositions(rs) {
  return new Set(rs.map((r) => r.ipp.map((v) => v.toFixed(2)).join(','))).size;
}

function median(a) {
  const s = Float64Array.from(a).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmtG(v) { return String(Number(v.toPrecision(4))); } // ~ Python's {:.4g}

/**
 * Choose the series and place its slices (a port of io/dicom_select.py
 * select_series and io/dicom_geometry.py plan_stack).
 *
 * @param {object[]} records results of parseHeader
 * @returns {{slices: object[], sourceOf: number[], orient: object, shape: number[],
 *            spacing: number[], affine: number[][], info: object, warnings: string[]}}
 *   sourceOf[z] is the index in `slices` whose image fills output slice z
 *   (gaps are filled with the nearest slice, as in Python).
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
  if (notDicom.length && records.length > 1) warnings.push(`skipped ${notDicom.length} non-DICOM file(s): ${listNames(notDicom)}`);

  const excluded = new Map();
  const groups = new Map();
  for (const r of dicom) {
    const why = exclusionReason(r);
    if (why) {
      if (!excluded.has(why)) excluded.set(why, []);
      excluded.get(why).push(r);
    } else {
      if (!groups.has(r.seriesUid)) groups.set(r.seriesUid, []);
      groups.get(r.seriesUid).push(r);
    }
  }
  if (groups.size === 0) {
    const nonCT = dicom.find((r) => r.modality && r.modality !== 'CT');
    if (nonCT) throw new DicomError(`${nonCT.name}: modality is ${nonCT.modality}, not CT; napari-heartbox reads CT only.`);
    if (dicom.length === 1) throw new DicomError(`${dicom[0].name}: cannot load as an axial CT slice: ${exclusionReason(dicom[0])}.`);
    const found = [...excluded.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([w, rs]) => `${rs.length} ${w}`).join('; ');
    throw new DicomError(`No axial CT series found among ${dicom.length} DICOM files; found: ${found}.`);
  }
  const byReason = [...excluded.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const selWarnings = [];
  for (const [why, rs] of byReason) {
    selWarnings.push(`excluded ${rs.length} file(s), ${why}: ${listNames(rs.map((r) => r.name))}`);
  }
  // split a series whose images differ in matrix size, orientation or pixel spacing
  const candidates = new Map();
  for (const [uid, rs] of groups) {
    const sub = new Map();
    for (const r of rs) {
      const ps = r.pixelSpacing ? r.pixelSpacing.map((v) => Math.round(v * 1000) / 1000).join(',') : '-';
      const key = `${r.rows}x${r.cols}|${r.iop.map((v) => Math.round(v * 1000) / 1000).join(',')}|${ps}`;
      if (!sub.has(key)) sub.set(key, []);
      sub.get(key).push(r);
    }
    const parts = [...sub.values()].sort((a, b) => b.length - a.length);
    candidates.set(uid, parts[0]);
    if (parts.length > 1) {
      const dropped = parts.slice(1).flat().map((r) => r.name);
      const p0 = parts[0][0].pixelSpacing;
      const at = p0 ? ` at ${p0.map(fmtG).join(' x ')} mm` : '';
      selWarnings.push(`series ${uid} mixes image sizes, orientations or pixel spacings; kept the ${parts[0].length} images of ` +
        `${parts[0][0].rows}x${parts[0][0].cols}${at} and skipped ${dropped.length}: ${listNames(dropped)}`);
    }
  }
  let chosen = null;
  for (const [uid, rs] of candidates) {
    const key = [nPositions(rs), -(rs[0].seriesNumber || 0)];
    if (!chosen || key[0] > chosen.key[0] || (key[0] === chosen.key[0] && key[1] > chosen.key[1])) chosen = { uid, key };
  }
  const others = [...candidates.entries()].filter(([u]) => u !== chosen.uid)
    .map(([u, rs]) => ({ uid: u, n: nPositions(rs), num: rs[0].seriesNumber }))
    .sort((a, b) => b.n - a.n);
  if (others.length) {
    // no SeriesDescription in messages (free text that can name the patient), as in Python
    selWarnings.push(`${others.length} other series found and not loaded (the browser app loads the largest): ` +
      others.map((o) => `${o.uid} (${o.n} slices${o.num != null ? `, series number ${o.num}` : ''})`).join('; '));
  }
  const seriesUid = chosen.uid;
  const series = candidates.get(seriesUid);

  // transfer syntax: lossy DCT JPEG and unknown syntaxes are refused, naming them
  const unsupported = series.filter((r) => !(r.transferSyntax in UNCOMPRESSED || r.transferSyntax in COMPRESSED_SYNTAXES) ||
    (r.pixel.encapsulated && !(r.transferSyntax in COMPRESSED_SYNTAXES)));
  if (unsupported.length) {
    const ts = unsupported[0].transferSyntax;
    const label = UNSUPPORTED_SYNTAXES[ts] || 'an unsupported transfer syntax';
    throw new DicomError(
      `${unsupported.length} of ${series.length} slices (e.g. ${unsupported[0].name}) are compressed with ${label} (${ts}); ` +
      'the browser app reads uncompressed, deflated, RLE, JPEG Lossless, JPEG-LS, JPEG 2000 and HTJ2K DICOM. ' +
      'Use napari-heartbox propose in Python for this series.');
  }
  const bad = series.find((r) => r.bitsAllocated !== 16);
  if (bad) throw new DicomError(`${bad.name}: ${bad.bitsAllocated} bits allocated per pixel is not supported (CT stores 16).`);

  // same order as the Python loader: file-level, modality, selection, then stacking warnings
  if (series.some((r) => !r.modality)) warnings.push('no Modality tag: assumed CT from the SOP class');
  warnings.push(...selWarnings);
  const plan = planStack(series, warnings);
  return {
    ...plan,
    info: {  // nothing free-text or identifying beyond the series UID the sector file needs
      series_uid: seriesUid.startsWith('(') ? null : seriesUid,
      manufacturer: series[0].manufacturer,
      modality: 'CT',
    },
    warnings,
  };
}

// (transpose, flipY, flipX) bringing x towards +L and y towards +P (io/dicom_geometry.py _in_plane)
function inPlane(rowCos, colCos) {
  const argmax = (v) => { const a = v.map(Math.abs); return a[0] >= a[1] && a[0] >= a[2] ? 0 : a[1] >= a[2] ? 1 : 2; };
  const axRow = argmax(rowCos);
  const axCol = argmax(colCos);
  if (axRow === axCol) return { transpose: false, flipY: false, flipX: false };
  if (axRow === 0 || axCol === 1) return { transpose: false, flipY: colCos[1] < 0, flipX: rowCos[0] < 0 };
  return { transpose: true, flipY: rowCos[1] < 0, flipX: colCos[0] < 0 };
}

// Sort, de-duplicate and place the images of one series (io/dicom_geometry.py plan_stack)
function planStack(slices, warnings) {
  const h0 = slices[0];
  const unit = (v) => { const l = norm(v); return v.map((x) => x / l); };
  const rowCos = unit(h0.iop.slice(0, 3));
  const colCos = unit(h0.iop.slice(3, 6));
  let n = unit(cross(rowCos, colCos));
  if (n[2] < 0) n = n.map((v) => -v); // normal points superior: z index 0 = most inferior
  const d = slices.map((r) => dot(r.ipp, n));
  const order = slices.map((_, i) => i).sort((i, j) =>
    (d[i] - d[j]) || ((slices[i].instanceNumber || 0) - (slices[j].instanceNumber || 0)) ||
    (slices[i].name < slices[j].name ? -1 : slices[i].name > slices[j].name ? 1 : 0));
  const uniq = [];
  const dups = [];
  for (const i of order) {
    if (uniq.length && Math.abs(d[i] - d[uniq[uniq.length - 1]]) < DUP_TOL_MM) dups.push(slices[i].name);
    else uniq.push(i);
  }
  if (dups.length) {
    warnings.push(`duplicate slice positions: ${dups.length} image(s) at the same position as another were skipped: ${listNames(dups)}`);
  }
  const ss = uniq.map((i) => slices[i]);
  const du = uniq.map((i) => d[i]);
  let dy = 1;
  let dx = 1;
  if (h0.pixelSpacing) [dy, dx] = h0.pixelSpacing;
  else warnings.push('PixelSpacing missing: assumed 1.0 mm in-plane');
  let step;
  let dz;
  const sourceOf = [0];
  if (ss.length === 1) {
    dz = h0.sliceThickness > 0 ? h0.sliceThickness : null;
    if (dz === null) {
      dz = 1;
      warnings.push('single slice without SliceThickness: slice spacing assumed 1.0 mm');
    }
    step = n.map((v) => v * dz);
  } else {
    const diffs = du.slice(1).map((v, i) => v - du[i]);
    const med = median(diffs);
    const primaryZ = [0];
    const gapMsgs = [];
    diffs.forEach((gap, i) => {
      const missing = gap > 1.5 * med ? Math.round(gap / med) - 1 : 0;
      if (missing > 0) {
        const zPrev = primaryZ[primaryZ.length - 1];
        gapMsgs.push(`${Number(gap.toPrecision(3))} mm between positions ${du[i].toFixed(2)} and ${du[i + 1].toFixed(2)} (${listNames([ss[i].name, ss[i + 1].name])}; ${missing} slice(s) missing)`);
        for (let m = 1; m <= missing; m++) sourceOf.push(m <= missing / 2 ? i : i + 1);
        primaryZ.push(zPrev + missing + 1);
      } else {
        primaryZ.push(primaryZ[primaryZ.length - 1] + 1);
      }
      sourceOf.push(i + 1);
    });
    if (gapMsgs.length) {
      warnings.push(`missing slices (gap > 1.5x the median spacing ${fmtG(med)} mm): ${gapMsgs.join('; ')}; ` +
        'filled with copies of the nearest slice to keep the grid uniform');
    }
    const regular = diffs.filter((g) => g <= 1.5 * med);
    const tol = Math.max(DUP_TOL_MM, 0.01 * med);
    if (regular.length && Math.max(...regular) - Math.min(...regular) > tol) {
      warnings.push(`non-uniform slice spacing: ${fmtG(Math.min(...regular))} to ${fmtG(Math.max(...regular))} mm ` +
        `(median ${fmtG(med)} mm); stacked on a uniform grid of the mean spacing`);
    }
    const nzOut = primaryZ[primaryZ.length - 1] + 1;
    const p0 = ss[0].ipp;
    const p1 = ss[ss.length - 1].ipp;
    step = [0, 1, 2].map((k) => (p1[k] - p0[k]) / (nzOut - 1));
    dz = dot(step, n);
  }
  // gantry tilt: slice positions move along a direction that is not the normal
  const along = dot(step, n);
  const shear = step.map((v, k) => v - along * n[k]);
  const tiltDeg = (Math.atan2(norm(shear), along) * 180) / Math.PI;
  const tag = h0.tilt;
  if (tiltDeg > 0.01 || (tag != null && Math.abs(tag) > 0.01)) {
    const tagTxt = tag != null ? ` (GantryDetectorTilt ${tag} deg)` : '';
    warnings.push(ss.length > 1
      ? `gantry tilt: slices are sheared by ${tiltDeg.toFixed(2)} deg${tagTxt}; the shear is recorded in the affine (z axis not perpendicular to the slices)`
      : `gantry tilt${tagTxt}: single oblique slice, placed along its normal`);
  }
  const orient = inPlane(rowCos, colCos);
  const rows = h0.rows;
  const cols = h0.cols;
  // stored index (k, r, c) -> LPS; r runs along colCos (dy), c along rowCos (dx)
  const S = [0, 1, 2].map((k) => [step[k], colCos[k] * dy, rowCos[k] * dx, ss[0].ipp[k]]);
  S.push([0, 0, 0, 1]);
  // output index (k, yo, xo) -> stored index (k, r, c)
  const P = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  let ny;
  let nx;
  if (!orient.transpose) {
    [ny, nx] = [rows, cols];
    [P[1][1], P[1][3]] = orient.flipY ? [-1, rows - 1] : [1, 0];
    [P[2][2], P[2][3]] = orient.flipX ? [-1, cols - 1] : [1, 0];
  } else {
    [ny, nx] = [cols, rows];
    [P[2][1], P[2][3]] = orient.flipY ? [-1, cols - 1] : [1, 0];
    [P[1][2], P[1][3]] = orient.flipX ? [-1, rows - 1] : [1, 0];
  }
  const affine = S.map((row) => [0, 1, 2, 3].map((j) => row.reduce((acc, v, k) => acc + v * P[k][j], 0)));
  const spacing = orient.transpose ? [dz, dx, dy] : [dz, dy, dx];
  warnings.push(...checkSpacing(spacing, `the series of ${ss[0].name}`));
  return {
    slices: ss,
    sourceOf,
    orient,
    shape: [sourceOf.length, ny, nx],
    spacing,
    affine,
  };
}

// plausible CT geometry, as io/plausible.py: a wrong header is refused, not boxed
const PIXEL_SPACING_MM = [0.05, 5.0];
const SLICE_STEP_MM = [0.05, 20.0];
const SLICE_STEP_WARN_MM = 10.0;

function checkSpacing([dz, dy, dx], where) {
  const checks = [
    ['slice step (from the slice positions)', dz, SLICE_STEP_MM],
    ['pixel spacing (rows)', dy, PIXEL_SPACING_MM],
    ['pixel spacing (columns)', dx, PIXEL_SPACING_MM],
  ];
  for (const [name, v, [lo, hi]] of checks) {
    if (!(v >= lo && v <= hi)) {
      throw new DicomError(`${where}: ${name} ${fmtG(v)} mm is not plausible for a CT ` +
        `(accepted ${lo} to ${hi} mm); the geometry in the header is wrong`);
    }
  }
  if (dz > SLICE_STEP_WARN_MM) {
    return [`slices are ${fmtG(dz)} mm apart (more than ${SLICE_STEP_WARN_MM} mm): the model saw ` +
      '1-8 mm slices, so the box faces along z are coarse; check them'];
  }
  return [];
}

/**
 * Apply the in-plane transpose/flips of the plan to one stored (rows, cols)
 * HU image `src`, writing the volume's (y, x) slice into `out`.
 */
export function orientSlice(src, rows, cols, orient, out) {
  const { transpose, flipY, flipX } = orient;
  if (!transpose) {
    for (let y = 0; y < rows; y++) {
      const r = flipY ? rows - 1 - y : y;
      for (let x = 0; x < cols; x++) out[y * cols + x] = src[r * cols + (flipX ? cols - 1 - x : x)];
    }
  } else {
    // output (yo, xo) = stored (r = xo', c = yo'), shape (cols, rows)
    for (let y = 0; y < cols; y++) {
      const c = flipY ? cols - 1 - y : y;
      for (let x = 0; x < rows; x++) out[y * rows + x] = src[(flipX ? rows - 1 - x : x) * cols + c];
    }
  }
}

// round half to even, like numpy.rint (only reached when slope/intercept are non-integer)
function rint(v) {
  const r = Math.round(v);
  return (Math.abs(v % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

/**
 * Fast path for slope 1 and an integer intercept: adds the intercept to two
 * int16 lanes per 32-bit word (SWAR) and detects lane overflow. Applies to
 * signed 16-bit data and to unsigned data with BitsStored <= 15 (masked, so
 * every lane is a non-negative int16). Returns false, leaving the work to the
 * exact scalar loop, when it does not apply or when some value would need
 * clipping. Bit-identical to the scalar loop otherwise.
 */
function fastIntegerHU(r, raw, out, signed, bs, mask) {
  const n = raw.length;
  const b = r.intercept;
  if (!(signed ? bs === 16 : bs <= 15) || b < -32768 || b > 32767) return false;
  if (raw.byteOffset % 4 !== 0 || out.byteOffset % 4 !== 0) return false;
  const m = n >> 1;
  const src = new Uint32Array(raw.buffer, raw.byteOffset, m);
  const dst = new Uint32Array(out.buffer, out.byteOffset, m);
  const H = 0x80008000 | 0;
  const L = 0x7fff7fff;
  const bb = (b & 0xffff) * 0x10001;
  const bbL = bb & L;
  const mm = signed ? -1 : mask * 0x10001;
  let ov = 0;
  for (let i = 0; i < m; i++) {
    const x = src[i] & mm;
    const y = ((x & L) + bbL) ^ ((x ^ bb) & H); // lane-wise x + b (mod 2^16)
    dst[i] = y;
    ov |= ~(x ^ bb) & (x ^ y); // sign bit set: that lane overflowed
  }
  if (ov & H) return false;
  if (n & 1) {
    const v = (signed ? (raw[n - 1] << 16) >> 16 : raw[n - 1] & mask) + b;
    if (v < -32768 || v > 32767) return false;
    out[n - 1] = v;
  }
  return true;
}

/**
 * Write the HU values of one slice into ``out`` (int16, row-major y, x).
 *
 * Exactly like the Python loader (io/dicom_pixels.py): the 16 stored bits are
 * masked to BitsStored (unsigned) or sign-extended from bit BitsStored-1
 * (signed); HU = stored × slope + intercept, in integers when slope is 1 and
 * the intercept an integer, otherwise in float32 then rounded half-to-even;
 * finally clipped to int16.
 *
 * @returns {boolean} true when some values had to be clipped
 */
export function sliceToHU(r, out) {
  const n = r.rows * r.cols;
  if (r.pixel.length < 2 * n) throw new DicomError(`${r.name}: pixel data is truncated (${r.pixel.length} bytes for ${r.rows}x${r.cols}).`);
  const bigEndian = r.transferSyntax === '1.2.840.10008.1.2.2';
  const off = r.pixel.offset;
  let raw;
  if (!bigEndian && off % 2 === 0) {
    raw = new Uint16Array(r.buffer, off, n);
  } else {
    const dv = new DataView(r.buffer, off, 2 * n);
    raw = new Uint16Array(n);
    for (let i = 0; i < n; i++) raw[i] = dv.getUint16(2 * i, !bigEndian);
  }
  const bs = r.bitsStored > 0 && r.bitsStored <= 16 ? r.bitsStored : 16;
  const signed = r.pixelRepresentation === 1;
  const sh = 32 - bs; // sign extension: (raw << sh) >> sh
  const mask = bs === 16 ? 0xffff : (1 << bs) - 1;
  let clipped = false;
  if (r.slope === 1 && Number.isInteger(r.intercept) && fastIntegerHU(r, raw, out, signed, bs, mask)) return false;
  if (r.slope === 1 && Number.isInteger(r.intercept)) {
    const b = r.intercept;
    if (signed) {
      for (let i = 0; i < n; i++) {
        const v = ((raw[i] << sh) >> sh) + b;
        if (v < -32768 || v > 32767) { out[i] = v < 0 ? -32768 : 32767; clipped = true; } else out[i] = v;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = (raw[i] & mask) + b;
        if (v < -32768 || v > 32767) { out[i] = v < 0 ? -32768 : 32767; clipped = true; } else out[i] = v;
      }
    }
  } else {
    // float32 arithmetic like numpy: f32(stored) * f32(slope) + f32(intercept)
    const fs = Math.fround(r.slope);
    const fb = Math.fround(r.intercept);
    for (let i = 0; i < n; i++) {
      const st = signed ? (raw[i] << sh) >> sh : raw[i] & mask;
      const v = rint(Math.fround(Math.fround(st * fs) + fb));
      if (v < -32768 || v > 32767) { out[i] = v < 0 ? -32768 : 32767; clipped = true; } else out[i] = v;
    }
  }
  return clipped;
}

/**
 * The stored 16-bit values of one slice, little-endian decoded, as a new
 * Uint16Array (a copy: the file's bytes can be released).
 */
export function storedValues(r) {
  const n = r.rows * r.cols;
  if (r.pixel.length < 2 * n) throw new DicomError(`${r.name}: pixel data is truncated (${r.pixel.length} bytes for ${r.rows}x${r.cols}).`);
  const off = r.pixel.offset;
  if (r.transferSyntax !== '1.2.840.10008.1.2.2') return new Uint16Array(r.buffer.slice(off, off + 2 * n));
  const dv = new DataView(r.buffer, off, 2 * n);
  const raw = new Uint16Array(n);
  for (let i = 0; i < n; i++) raw[i] = dv.getUint16(2 * i, false);
  return raw;
}

/** True when the slice's pixels are encapsulated (compressed) frames. */
export function isCompressed(r) {
  return !!(r.pixel && r.pixel.encapsulated);
}

const framesOf = new WeakMap(); // pixel buffer → its encapsulated frames (split once per file)

/**
 * A copy of the compressed bytes of one slice's frame (r.buffer holds the
 * file, or the PixelData value from r.pixel.offset on), for a worker to decode.
 */
export function compressedFrame(r) {
  let frames = framesOf.get(r.buffer);
  if (!frames) {
    frames = encapsulatedFrames(new Uint8Array(r.buffer), r.pixel.offset, r.frames || 1, r.fileName || r.name);
    framesOf.set(r.buffer, frames);
  }
  const f = frames[r.frame ?? 0];
  return f.slice(); // own buffer: it is transferred to the worker
}

/**
 * A slice kept as its stored values until its HU are needed: `hu(out)` writes
 * the (y, x) HU slice (oriented like the volume) into `out` and returns true
 * when values were clipped; `previewInto` converts only every stride-th voxel.
 * The arithmetic is sliceToHU's (the Python loader's), so results are equal.
 */
export function lazySlice(r, raw, orient) {
  const rec = {
    name: r.name, rows: r.rows, cols: r.cols, buffer: raw.buffer,
    pixel: { offset: raw.byteOffset, length: raw.byteLength }, transferSyntax: '1.2.840.10008.1.2.1',
    bitsStored: r.bitsStored, pixelRepresentation: r.pixelRepresentation, slope: r.slope, intercept: r.intercept,
  };
  const identity = !orient.transpose && !orient.flipY && !orient.flipX;
  return {
    hu(out) {
      if (identity) return sliceToHU(rec, out);
      const tmp = new Int16Array(r.rows * r.cols);
      const clipped = sliceToHU(rec, tmp);
      orientSlice(tmp, r.rows, r.cols, orient, out);
      return clipped;
    },
    // the HU of output voxels (y·stride, x·stride), y < pY, x < pX, into
    // out[offset + y·pX + x]: the preview images, without converting the slice
    previewInto(out, offset, pY, pX, stride) {
      const { transpose, flipY, flipX } = orient;
      const cols = r.cols;
      const toHU = huConverter(rec);
      for (let y = 0; y < pY; y++) {
        const yo = y * stride;
        for (let x = 0; x < pX; x++) {
          const xo = x * stride;
          let row;
          let col;
          if (!transpose) {
            row = flipY ? r.rows - 1 - yo : yo;
            col = flipX ? cols - 1 - xo : xo;
          } else {
            col = flipY ? cols - 1 - yo : yo;
            row = flipX ? r.rows - 1 - xo : xo;
          }
          out[offset + y * pX + x] = toHU(raw[row * cols + col]);
        }
      }
    },
  };
}

// one stored value → HU, exactly as sliceToHU's scalar loops (clipped to
// int16); the slice's constants are taken once
function huConverter(r) {
  const bs = r.bitsStored > 0 && r.bitsStored <= 16 ? r.bitsStored : 16;
  const sh = 32 - bs;
  const mask = bs === 16 ? 0xffff : (1 << bs) - 1;
  const signed = r.pixelRepresentation === 1;
  const clip = (h) => (h < -32768 ? -32768 : h > 32767 ? 32767 : h);
  if (r.slope === 1 && Number.isInteger(r.intercept)) {
    const b = r.intercept;
    return (v) => clip((signed ? (v << sh) >> sh : v & mask) + b);
  }
  const fs = Math.fround(r.slope);
  const fb = Math.fround(r.intercept);
  return (v) => clip(rint(Math.fround(Math.fround((signed ? (v << sh) >> sh : v & mask) * fs) + fb)));
}
