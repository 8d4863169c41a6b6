// JPEG Lossless (ITU-T T.81 process 14, the SOF3 Huffman lossless mode) decoder for
// one-component images of 2-16 bits: DICOM's JPEG Lossless (1.2.840.10008.1.2.4.57)
// and JPEG Lossless SV1 (…4.70, predictor 1). All seven predictors, point
// transform, restart intervals and byte stuffing are handled; arithmetic coding,
// hierarchical mode and several components (colour) are refused.
//
// Conventions (T.81 H.1): samples are in row-major order; Ra = left, Rb = above,
// Rc = above-left neighbour. The first sample of the image and of each restart
// interval is predicted by 2^(P - Pt - 1); the rest of that first line by Ra; the
// first sample of every other line by Rb; all others by the scan's predictor.
// Reconstruction is modulo 2^16 (the difference category 16 means 32768), and the
// output is the reconstructed value shifted left by the point transform Pt.
//
// Written for napari-heartbox (the npm decoder jpeg-lossless-decoder-js 2.1.2
// decodes some 16-bit DICOM JPEG Lossless images wrong: WG04 CT2_JPLL from pixel
// 112,515 on), and tested against pydicom + pylibjpeg-libjpeg on real files.

class JpegError extends Error {}

// marker codes
const SOI = 0xd8;
const SOF3 = 0xc3;
const DHT = 0xc4;
const DRI = 0xdd;
const SOS = 0xda;
const EOI = 0xd9;
const LOOKAHEAD = 9; // Huffman codes up to this length decode with one table look-up

// A Huffman table (T.81 Annex C and F.2.2.3): a look-up table for short codes,
// maxcode/valptr per length for the long ones.
function buildTable(counts, values) {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  const look = new Int32Array(1 << LOOKAHEAD).fill(-1); // (length << 8) | value, -1: longer code
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    valptr[len] = k;
    mincode[len] = code;
    for (let i = 0; i < counts[len - 1]; i++) {
      if (len <= LOOKAHEAD) {
        const shift = LOOKAHEAD - len;
        for (let j = 0; j < 1 << shift; j++) look[(code << shift) | j] = (len << 8) | values[k];
      }
      code++;
      k++;
    }
    maxcode[len] = counts[len - 1] ? code - 1 : -1;
    if (code > 1 << len) throw new JpegError('a Huffman table has more codes than its lengths allow');
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff; // sentinel
  return { maxcode, valptr, mincode, look, values };
}

/**
 * Decode one JPEG Lossless image.
 *
 * @param {Uint8Array} data the JPEG stream (SOI … EOI)
 * @returns {{rows: number, cols: number, precision: number, pixels: Uint16Array}}
 * @throws {Error} a one-line reason when the stream is not one-component lossless JPEG or is damaged
 */
export function decodeJpegLossless(data) {
  let pos = 0;
  const n = data.length;
  const u16 = (p) => (data[p] << 8) | data[p + 1];
  if (n < 4 || data[0] !== 0xff || data[1] !== SOI) throw new JpegError('not a JPEG stream (no SOI marker)');
  pos = 2;
  const tables = [];
  let frame = null;
  let restart = 0;
  for (;;) {
    // next marker (fill bytes 0xFF allowed)
    if (pos >= n) throw new JpegError('the stream ends before the scan');
    if (data[pos] !== 0xff) throw new JpegError(`expected a marker at byte ${pos}`);
    while (pos < n && data[pos] === 0xff) pos++;
    const m = data[pos++];
    if (m === EOI) throw new JpegError('no scan before the end of the image');
    if (pos + 2 > n) throw new JpegError('a segment is truncated');
    const len = u16(pos);
    const end = pos + len;
    if (len < 2 || end > n) throw new JpegError('a segment runs past the end of the stream');
    const seg = pos + 2;
    if (m === SOF3) {
      const comps = data[seg + 5];
      frame = { precision: data[seg], rows: u16(seg + 1), cols: u16(seg + 3), comps };
      if (comps !== 1) throw new JpegError(`${comps} components (only one-component images are decoded)`);
      if (frame.precision < 2 || frame.precision > 16) throw new JpegError(`precision ${frame.precision} bits`);
    } else if ((m >= 0xc0 && m <= 0xcf) && m !== DHT && m !== 0xc8 && m !== 0xcc) {
      throw new JpegError(`SOF${m - 0xc0} (only lossless Huffman JPEG, SOF3, is decoded)`);
    } else if (m === DHT) {
      let p = seg;
      while (p < end) {
        const id = data[p] & 0x0f;
        const counts = data.subarray(p + 1, p + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        if (p + 17 + total > end) throw new JpegError('a Huffman table is truncated');
        tables[id] = buildTable(counts, data.subarray(p + 17, p + 17 + total));
        p += 17 + total;
      }
    } else if (m === DRI) {
      restart = u16(seg);
    } else if (m === SOS) {
      if (!frame) throw new JpegError('a scan comes before the frame header');
      const ns = data[seg];
      if (ns !== 1) throw new JpegError(`${ns} components in the scan`);
      const td = data[seg + 2] >> 4;
      // Ls | Ns | (Cs, Td/Ta) × Ns | Ss (predictor) | Se | Ah/Al (Al = point transform)
      const ss = data[seg + 1 + 2 * ns];
      const pt = data[seg + 3 + 2 * ns] & 0x0f;
      if (ss < 1 || ss > 7) throw new JpegError(`predictor ${ss} (1-7 are defined)`);
      if (!tables[td]) throw new JpegError(`the scan uses Huffman table ${td}, which is not defined`);
      return { rows: frame.rows, cols: frame.cols, precision: frame.precision,
        pixels: decodeScan(data, end, frame, tables[td], ss, pt, restart) };
    }
    pos = end;
  }
}

function decodeScan(data, start, frame, table, ss, pt, restart) {
  const { rows, cols, precision } = frame;
  const out = new Uint16Array(rows * cols);
  const n = data.length;
  const { look, maxcode, valptr, mincode, values } = table;
  let pos = start;
  let bits = 0; // bit buffer, the next bit is bit (nbits - 1)
  let nbits = 0;
  let marker = false; // a marker was met: feed zeros
  const fill = () => {
    while (nbits <= 24) {
      let b = 0;
      if (!marker && pos < n) {
        b = data[pos];
        if (b === 0xff) {
          const next = data[pos + 1];
          if (next === 0) pos += 2; // stuffed zero
          else { marker = true; b = 0; }
        } else pos++;
      }
      if (marker) b = 0;
      bits = ((bits << 8) | b) >>> 0;
      nbits += 8;
    }
  };
  const huff = () => {
    if (nbits < 16) fill();
    const peek = (bits >>> (nbits - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1);
    const e = look[peek];
    if (e >= 0) {
      nbits -= e >> 8;
      return e & 0xff;
    }
    let len = LOOKAHEAD + 1;
    let code = (bits >>> (nbits - len)) & ((1 << len) - 1);
    while (len <= 16 && code > maxcode[len]) {
      len++;
      code = (bits >>> (nbits - len)) & ((1 << len) - 1);
    }
    if (len > 16) throw new JpegError('a Huffman code is not in its table (damaged data)');
    nbits -= len;
    return values[valptr[len] + code - mincode[len]];
  };
  const diff = (s) => {
    if (s === 0) return 0;
    if (s === 16) return 32768;
    if (s > 16) throw new JpegError(`difference category ${s} (damaged data)`);
    if (nbits < s) fill();
    const v = (bits >>> (nbits - s)) & ((1 << s) - 1);
    nbits -= s;
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  };
  const initial = 1 << (precision - pt - 1);
  let firstLine = 0; // the row that is the first line of the current restart interval
  let sinceRestart = 0;
  let k = 0;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++, k++) {
      if (restart && sinceRestart === restart) {
        // restart marker: drop the padding bits, expect RSTn, predict as on a first line
        if (x !== 0) throw new JpegError('a restart interval that is not whole lines is not supported');
        nbits = 0;
        bits = 0;
        if (!(data[pos] === 0xff && data[pos + 1] >= 0xd0 && data[pos + 1] <= 0xd7)) {
          throw new JpegError('a restart marker is missing (damaged data)');
        }
        pos += 2;
        marker = false;
        sinceRestart = 0;
        firstLine = y;
      }
      let pred;
      if (y === firstLine) pred = x === 0 ? initial : out[k - 1];
      else if (x === 0) pred = out[k - cols];
      else {
        const ra = out[k - 1];
        const rb = out[k - cols];
        const rc = out[k - cols - 1];
        switch (ss) {
          case 1: pred = ra; break;
          case 2: pred = rb; break;
          case 3: pred = rc; break;
          case 4: pred = ra + rb - rc; break;
          case 5: pred = ra + ((rb - rc) >> 1); break;
          case 6: pred = rb + ((ra - rc) >> 1); break;
          default: pred = (ra + rb) >> 1;
        }
      }
      out[k] = (pred + diff(huff())) & 0xffff;
      sinceRestart++;
    }
  }
  if (pt) for (let i = 0; i < out.length; i++) out[i] = (out[i] << pt) & 0xffff;
  return out;
}
