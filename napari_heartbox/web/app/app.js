// The main page: pick/drop a DICOM series, run the worker pipeline, show the box.
// Test/automation hooks: document.body.dataset.state is idle|running|done|error,
// the sector JSON is the text of #sector-json, timings and warnings are JSON in
// the hidden #timings-json, the status line is #status.

import { analyze } from './heartbox.js';
import { drawPreviews } from './previews.js';

const $ = (id) => document.getElementById(id);
const statusEl = $('status');
const progressEl = $('progress');
let lastJson = null;

function setState(state, text) {
  document.body.dataset.state = state;
  statusEl.className = state;
  statusEl.textContent = text;
}

function fmtMs(v) { return v === undefined || v === null ? '—' : `${v.toFixed(0)} ms`; }

function fillTable(el, rows) {
  const body = el.tBodies[0];
  body.replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement('tr');
    const a = document.createElement('td'); a.textContent = k;
    const b = document.createElement('td'); b.textContent = v;
    tr.append(a, b);
    return tr;
  }));
}

function showSector(sector, result) {
  const rows = [['found', sector.found ? 'yes' : 'no heart in view'], ['confidence', sector.confidence.toFixed(3)]];
  if (sector.found) {
    const v = sector.voxel;
    const size = ['z', 'y', 'x'].map((k, i) => (v[k][1] - v[k][0]) * sector.spacing_mm[i]);
    rows.push(
      ['voxels z', `[${v.z[0]}, ${v.z[1]})`], ['voxels y', `[${v.y[0]}, ${v.y[1]})`], ['voxels x', `[${v.x[0]}, ${v.x[1]})`],
      ['size (z, y, x)', `${size.map((s) => s.toFixed(1)).join(' × ')} mm`],
      ['LPS min', sector.patient_mm.min.map((s) => s.toFixed(1)).join(', ') + ' mm'],
      ['LPS max', sector.patient_mm.max.map((s) => s.toFixed(1)).join(', ') + ' mm'],
    );
  }
  rows.push(['volume', `${sector.shape.join(' × ')} voxels, ${sector.spacing_mm.map((s) => s.toFixed(3)).join(' / ')} mm`]);
  fillTable($('numbers'), rows);
  const t = result.timings;
  fillTable($('timings'), [
    ['read headers + parse + sort', fmtMs(t.read_parse_ms)],
    ['preprocess + infer (wall)', fmtMs(t.infer_ms)],
    ['  of which onnxruntime runs', fmtMs(t.run_ms)],
    ['  DICOM reader: values + previews (parallel worker)', fmtMs(t.reader_ms)],
    ['  HU conversion of the scored slices', fmtMs(t.hu_ms)],
    ['  decoding of compressed frames (CPU, all decoder workers)', t.slices_decoded
      ? `${fmtMs(t.decode_ms)} for ${t.slices_decoded} of ${result.sector.shape[0]} slices` : 'not compressed'],
    ['post-process', fmtMs(t.post_ms)],
    ['model load (first run only)', fmtMs(t.init_ms)],
    ['end to end (files → sector)', fmtMs(t.end_to_end_ms)],
    ['threads', String(t.threads)],
  ]);
  $('results').hidden = false;
  lastJson = JSON.stringify(sector, null, 2);
  $('sector-json').textContent = lastJson;
  $('copy').disabled = false;
  $('download').disabled = false;
  if (result.preview) {
    $('views').hidden = false;
    drawPreviews(result.preview, sector, {
      axial: $('view-axial'), coronal: $('view-coronal'), sagittal: $('view-sagittal'),
    });
  }
}

// Every result of the previous series goes before a new one starts: previews, box numbers,
// timings, JSON, warnings. One patient's box can never sit next to another's name.
function clearResults() {
  $('views').hidden = true;
  $('results').hidden = true;
  for (const id of ['view-axial', 'view-coronal', 'view-sagittal']) {
    const c = $(id);
    c.getContext('2d').clearRect(0, 0, c.width, c.height);
  }
  $('numbers').tBodies[0].replaceChildren();
  $('timings').tBodies[0].replaceChildren();
  $('warnings').replaceChildren();
  $('sector-json').textContent = '';
  $('timings-json').textContent = '';
  lastJson = null;
  $('copy').disabled = true; $('download').disabled = true;
}

async function runOn(files) {
  files = Array.from(files || []);
  clearResults();
  if (files.length === 0) {
    setState('error', 'No files selected: choose a DICOM folder or the DICOM files of one CT series.');
    return;
  }
  setState('running', `Reading ${files.length} files…`);
  progressEl.value = 0;
  const margin = $('margin').value;
  const t0 = performance.now();
  try {
    const result = await analyze(files, {
      numThreads: Number($('threads').value) || 1,
      marginMm: margin === '' ? undefined : Number(margin),
      onProgress: (m) => {
        progressEl.value = m.total ? (m.phase === 'read' ? 0.3 * m.done / m.total : 0.3 + 0.7 * m.done / m.total) : 0;
        statusEl.textContent = m.phase === 'read' ? `Reading ${m.done}/${m.total} files…` : `Finding the heart: ${m.done}/${m.total} slices…`;
      },
    });
    result.timings.end_to_end_ms = performance.now() - t0;
    progressEl.value = 1;
    $('warnings').replaceChildren(...result.warnings.map((w) => { const li = document.createElement('li'); li.textContent = w; return li; }));
    showSector(result.sector, result);
    $('timings-json').textContent = JSON.stringify({ timings: result.timings, warnings: result.warnings });
    setState('done', result.sector.found
      ? `Heart sector found (confidence ${result.sector.confidence.toFixed(2)}) in ${(result.timings.end_to_end_ms / 1000).toFixed(2)} s.`
      : 'No heart in view in this series.');
  } catch (e) {
    progressEl.value = 0;
    setState('error', e.message);
  }
}

// drag and drop: files and (recursively) folders
async function entriesToFiles(entries) {
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      out.push(await new Promise((res, rej) => entry.file(res, rej)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) if (e) await walk(e);
  return out;
}

const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const items = Array.from(e.dataTransfer.items || []);
  const entries = items.map((it) => it.webkitGetAsEntry && it.webkitGetAsEntry()).filter(Boolean);
  runOn(entries.length ? await entriesToFiles(entries) : e.dataTransfer.files);
});
$('files').addEventListener('change', (e) => runOn(e.target.files));
$('folder').addEventListener('change', (e) => runOn(e.target.files));
$('copy').addEventListener('click', async () => {
  try { await navigator.clipboard.writeText(lastJson); $('copy').textContent = 'Copied'; } catch { $('copy').textContent = 'Copy failed'; }
  setTimeout(() => { $('copy').textContent = 'Copy JSON'; }, 1500);
});
$('download').addEventListener('click', () => {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([lastJson], { type: 'application/json' }));
  // no identifier in the file name (a SeriesInstanceUID is one); the UID stays inside the JSON
  a.download = 'heartbox-sector.json';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
