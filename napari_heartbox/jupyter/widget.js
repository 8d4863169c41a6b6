// napari-heartbox SectorWidget: the page side (anywidget render module).
//
// The web app's sector maths (web/app/sector.js: indexToLps, sectorToDict) are
// prepended to this file by napari_heartbox/jupyter/__init__.py, so the LPS mm
// shown while dragging come from the same code as the browser app's download.
//
// Conventions: arrays are (z, y, x), z index 0 = most inferior slice; the box is
// [z0, z1, y0, y1, x0, x1] in full-resolution voxels, half-open [start, stop),
// its faces drawn on voxel edges. Coronal and sagittal views put the most
// superior slice at the top and keep the physical aspect ratio.

const VIEW_PX = 300; // long side of a view (CSS pixels)
const GRAB_PX = 7; // how close to an edge a press grabs it

// view -> [rows axis, cols axis, rows flipped (superior at top)]
const LAYOUT = {
  axial: [1, 2, false],
  coronal: [0, 2, true],
  sagittal: [0, 1, true],
};
// the axis each view's slider moves through
const THROUGH = { axial: 0, coronal: 1, sagittal: 2 };

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function render({ model, el: root }) {
  root.classList.add('heartbox-widget');
  const shape = () => model.get('shape');
  const spacing = () => model.get('spacing');
  let box = model.get('box').slice(); // local copy; the model's while not dragging
  let drag = null;
  const hires = {}; // view -> {index, window, rows, cols, data}
  const timers = {};

  // ---------------------------------------------------------------- DOM
  const btn = (text, type) => {
    const b = el('button', { class: 'hb-btn', text, 'data-action': type });
    b.addEventListener('click', () => model.send({ type }));
    return b;
  };
  const proposeBtn = btn('Propose', 'propose');
  const resetBtn = btn('Reset', 'reset');
  const undoBtn = btn('Undo', 'undo');
  const winSel = el('select', { class: 'hb-window', title: 'window preset' });
  for (const w of model.get('windows')) winSel.append(el('option', { value: w, text: w }));
  winSel.addEventListener('change', () => { model.set('window', winSel.value); model.save_changes(); });
  const status = el('div', { class: 'hb-status' });
  const mm = el('div', { class: 'hb-mm' });
  const views = {};
  const viewRow = el('div', { class: 'hb-views' });
  for (const name of Object.keys(LAYOUT)) {
    const canvas = el('canvas', { class: 'hb-canvas', 'data-view': name });
    const slider = el('input', { type: 'range', min: '0', step: '1', class: 'hb-slider', 'data-view': name });
    const label = el('div', { class: 'hb-label' });
    views[name] = { canvas, slider, label, index: 0 };
    slider.addEventListener('input', () => { views[name].index = +slider.value; draw(name); refine(name); });
    canvas.addEventListener('pointerdown', (ev) => onDown(name, ev));
    canvas.addEventListener('pointermove', (ev) => onMove(name, ev));
    canvas.addEventListener('pointerup', (ev) => onUp(name, ev));
    canvas.addEventListener('pointercancel', (ev) => onUp(name, ev));
    viewRow.append(el('div', { class: 'hb-view' }, label, canvas, slider));
  }
  const fields = {};
  const fieldRow = el('div', { class: 'hb-fields' });
  ['z0', 'z1', 'y0', 'y1', 'x0', 'x1'].forEach((k, i) => {
    const input = el('input', { type: 'number', step: '1', class: 'hb-field', 'data-field': k, title: `${k} (voxels; half-open)` });
    input.addEventListener('change', () => {
      const b = box.length === 6 ? box.slice() : defaultBox();
      b[i] = Math.round(+input.value);
      commit(b);
    });
    fields[k] = input;
    fieldRow.append(el('label', { class: 'hb-fl' }, `${k} `, input));
  });
  root.append(el('div', { class: 'hb-bar' }, proposeBtn, resetBtn, undoBtn, winSel, status), viewRow, fieldRow, mm);

  // -------------------------------------------------------------- pixels
  let preview = null;
  function loadPreview() {
    const dv = model.get('preview');
    preview = dv && dv.byteLength ? new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength) : null;
    for (const k of Object.keys(hires)) delete hires[k];
  }

  function defaultBox() {
    const [nz, ny, nx] = shape();
    const q = (n) => [Math.floor(n / 4), Math.max(Math.floor(n / 4) + 1, Math.ceil((3 * n) / 4))];
    return [...q(nz), ...q(ny), ...q(nx)];
  }

  // the grey value of full-resolution (row, col) of a view, from the best data held
  function sampler(name) {
    const [ra, ca, flip] = LAYOUT[name];
    const sh = shape();
    const idx = views[name].index;
    const h = hires[name];
    if (h && h.index === idx && h.window === model.get('window')) {
      return (r, c) => h.data[(flip ? sh[ra] - 1 - r : r) * h.cols + c];
    }
    if (!preview) return () => 0;
    const [pz, py, px] = model.get('preview_shape');
    const [sz, s] = model.get('preview_stride');
    const step = [sz, s, s];
    const pdim = [pz, py, px];
    const at = [0, 0, 0];
    const t = THROUGH[name];
    at[t] = Math.min(pdim[t] - 1, Math.floor(idx / step[t]));
    return (r, c) => {
      const rr = flip ? sh[ra] - 1 - r : r;
      at[ra] = Math.min(pdim[ra] - 1, Math.floor(rr / step[ra]));
      at[ca] = Math.min(pdim[ca] - 1, Math.floor(c / step[ca]));
      return preview[(at[0] * py + at[1]) * px + at[2]];
    };
  }

  function geometry(name) {
    const [ra, ca] = LAYOUT[name];
    const sh = shape();
    const sp = spacing();
    const hMm = sh[ra] * sp[ra];
    const wMm = sh[ca] * sp[ca];
    const scale = VIEW_PX / Math.max(hMm, wMm);
    return { rows: sh[ra], cols: sh[ca], w: Math.max(1, Math.round(wMm * scale)), h: Math.max(1, Math.round(hMm * scale)) };
  }

  // box edges of a view in canvas pixels: {left, right, top, bottom} (null without a box)
  function rectOf(name, b) {
    if (!b || b.length !== 6) return null;
    const [ra, ca, flip] = LAYOUT[name];
    const g = geometry(name);
    const sx = g.w / g.cols; const sy = g.h / g.rows;
    const r0 = b[2 * ra]; const r1 = b[2 * ra + 1];
    const c0 = b[2 * ca]; const c1 = b[2 * ca + 1];
    const top = flip ? (g.rows - r1) * sy : r0 * sy;
    const bottom = flip ? (g.rows - r0) * sy : r1 * sy;
    return { left: c0 * sx, right: c1 * sx, top, bottom };
  }

  function draw(name) {
    const v = views[name];
    const g = geometry(name);
    const c = v.canvas;
    if (c.width !== g.w || c.height !== g.h) { c.width = g.w; c.height = g.h; }
    const ctx = c.getContext('2d');
    const img = ctx.createImageData(g.w, g.h);
    const px = sampler(name);
    for (let y = 0; y < g.h; y++) {
      const r = Math.min(g.rows - 1, Math.floor(((y + 0.5) * g.rows) / g.h));
      for (let x = 0; x < g.w; x++) {
        const col = Math.min(g.cols - 1, Math.floor(((x + 0.5) * g.cols) / g.w));
        const val = px(r, col);
        const i = 4 * (y * g.w + x);
        img.data[i] = img.data[i + 1] = img.data[i + 2] = val; img.data[i + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    const rect = rectOf(name, box);
    const inSlab = rect && box[2 * THROUGH[name]] <= v.index && v.index < box[2 * THROUGH[name] + 1];
    if (rect) {
      ctx.strokeStyle = inSlab ? '#ffcc00' : 'rgba(255, 204, 0, 0.45)';
      ctx.setLineDash(inSlab ? [] : [5, 4]);
      ctx.lineWidth = 2;
      ctx.strokeRect(rect.left, rect.top, rect.right - rect.left, rect.bottom - rect.top);
      c.dataset.rect = [rect.left, rect.top, rect.right, rect.bottom].map((x) => x.toFixed(2)).join(',');
    } else {
      delete c.dataset.rect;
    }
    const n = shape()[THROUGH[name]];
    v.label.textContent = `${name} ${v.index + 1}/${n}` + (name === 'axial' ? '' : ' (superior at top)');
  }

  function drawAll() { for (const name of Object.keys(views)) draw(name); showNumbers(); }

  function showNumbers() {
    const ok = box.length === 6;
    ['z0', 'z1', 'y0', 'y1', 'x0', 'x1'].forEach((k, i) => { fields[k].value = ok ? String(box[i]) : ''; });
    if (!ok) { mm.textContent = ''; return; }
    const d = sectorToDict({
      found: true, z: box.slice(0, 2), y: box.slice(2, 4), x: box.slice(4, 6), confidence: 1,
      shape: shape(), spacing: spacing(), affine: model.get('affine'),
    });
    const f = (a) => a.map((v) => v.toFixed(1)).join(', ');
    mm.textContent = `LPS mm (voxel edges): min [${f(d.patient_mm.min)}], max [${f(d.patient_mm.max)}]`;
    root.dataset.box = JSON.stringify(box);
  }

  // ask Python for the full-resolution slice once the slider rests
  function refine(name) {
    clearTimeout(timers[name]);
    timers[name] = setTimeout(() => model.send({ type: 'slice', view: name, index: views[name].index }), 150);
  }

  function setSliders(recentre) {
    const sh = shape();
    for (const [name, v] of Object.entries(views)) {
      const t = THROUGH[name];
      v.slider.max = String(sh[t] - 1);
      const inside = box.length === 6 && box[2 * t] <= v.index && v.index < box[2 * t + 1];
      if (recentre && box.length === 6 && !inside) v.index = Math.floor((box[2 * t] + box[2 * t + 1] - 1) / 2);
      if (recentre === 'init' && box.length !== 6) v.index = Math.floor(sh[t] / 2);
      v.slider.value = String(v.index);
      refine(name);
    }
  }

  // ---------------------------------------------------------------- edits
  function commit(b) {
    const sh = shape();
    const fixed = b.slice();
    for (let a = 0; a < 3; a++) {
      let lo = Math.max(0, Math.min(sh[a] - 1, fixed[2 * a]));
      let hi = Math.max(1, Math.min(sh[a], fixed[2 * a + 1]));
      if (hi <= lo) hi = lo + 1;
      fixed[2 * a] = lo; fixed[2 * a + 1] = hi;
    }
    box = fixed;
    drawAll();
    model.set('box', fixed);
    model.save_changes();
  }

  function canvasXY(name, ev) {
    const r = views[name].canvas.getBoundingClientRect();
    const g = geometry(name);
    return [((ev.clientX - r.left) * g.w) / r.width, ((ev.clientY - r.top) * g.h) / r.height];
  }

  // which faces a press at (x, y) grabs: [[axis, side, 'x'|'y'], ...]
  function grab(name, x, y) {
    const rect = rectOf(name, box);
    if (!rect) return [];
    const [ra, ca, flip] = LAYOUT[name];
    const within = (v, a, b) => v >= a - GRAB_PX && v <= b + GRAB_PX;
    const faces = [];
    if (within(y, rect.top, rect.bottom)) {
      if (Math.abs(x - rect.left) <= GRAB_PX) faces.push([ca, 0, 'x']);
      else if (Math.abs(x - rect.right) <= GRAB_PX) faces.push([ca, 1, 'x']);
    }
    if (within(x, rect.left, rect.right)) {
      if (Math.abs(y - rect.top) <= GRAB_PX) faces.push([ra, flip ? 1 : 0, 'y']);
      else if (Math.abs(y - rect.bottom) <= GRAB_PX) faces.push([ra, flip ? 0 : 1, 'y']);
    }
    return faces;
  }

  function onDown(name, ev) {
    const [x, y] = canvasXY(name, ev);
    const faces = grab(name, x, y);
    if (!faces.length) return;
    drag = { name, faces, start: box.slice() };
    views[name].canvas.setPointerCapture(ev.pointerId);
    ev.preventDefault();
  }

  function onMove(name, ev) {
    const [x, y] = canvasXY(name, ev);
    if (!drag) {
      const f = grab(name, x, y);
      views[name].canvas.style.cursor = f.length === 2 ? 'move' : f.length ? (f[0][2] === 'x' ? 'ew-resize' : 'ns-resize') : 'default';
      return;
    }
    if (drag.name !== name) return;
    const g = geometry(name);
    const [, , flip] = LAYOUT[name];
    const b = drag.start.slice();
    for (const [axis, side, dir] of drag.faces) {
      let edge;
      if (dir === 'x') edge = Math.round((x * g.cols) / g.w);
      else {
        const r = Math.round((y * g.rows) / g.h);
        edge = flip ? g.rows - r : r;
      }
      const n = shape()[axis];
      edge = Math.max(0, Math.min(n, edge));
      if (side === 0) b[2 * axis] = Math.min(edge, b[2 * axis + 1] - 1);
      else b[2 * axis + 1] = Math.max(edge, b[2 * axis] + 1);
    }
    box = b;
    drawAll();
  }

  function onUp(name, ev) {
    if (!drag || drag.name !== name) return;
    const changed = box.some((v, i) => v !== drag.start[i]);
    drag = null;
    views[name].canvas.releasePointerCapture?.(ev.pointerId);
    if (changed) commit(box);
  }

  // --------------------------------------------------------------- model
  function fromModel() {
    if (drag) return;
    box = model.get('box').slice();
    setSliders(true);
    drawAll();
  }
  function showStatus() {
    status.textContent = model.get('status');
    undoBtn.disabled = !model.get('can_undo');
    winSel.value = model.get('window');
  }
  const onMsg = (msg, buffers) => {
    if (!msg || msg.type !== 'slice' || !buffers || !buffers.length) return;
    const buf = buffers[0];
    const data = new Uint8Array(buf.buffer ?? buf, buf.byteOffset ?? 0, buf.byteLength);
    hires[msg.view] = { index: msg.index, window: msg.window, rows: msg.shape[0], cols: msg.shape[1], data };
    if (views[msg.view] && views[msg.view].index === msg.index) draw(msg.view);
  };
  const onPreview = () => { loadPreview(); drawAll(); for (const n of Object.keys(views)) refine(n); };
  model.on('change:box', fromModel);
  model.on('change:status', showStatus);
  model.on('change:can_undo', showStatus);
  model.on('change:window', showStatus);
  model.on('change:preview', onPreview);
  model.on('msg:custom', onMsg);

  loadPreview();
  setSliders('init');
  showStatus();
  drawAll();
  root.dataset.ready = '1';
  return () => {
    model.off('change:box', fromModel);
    model.off('change:status', showStatus);
    model.off('change:can_undo', showStatus);
    model.off('change:window', showStatus);
    model.off('change:preview', onPreview);
    model.off('msg:custom', onMsg);
    for (const t of Object.values(timers)) clearTimeout(t);
  };
}

export default { render };
