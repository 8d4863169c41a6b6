// Speed page: latency per batch and per frame vs batch size, 1 thread vs N threads.
// URL parameters preset the controls and ?auto=1 starts immediately, e.g.
// speed.html?size=64&batches=2,4,8&reps=1&auto=1 (used by the tests).
// ?model=other.onnx[&input=NAME] times another same-origin ONNX file with an
// int16 [N, H, W] input instead of the bundled model (comparisons).
// Automation hooks: body[data-state] idle|running|done|error; window.heartboxSpeedResults.
// #results-card stays hidden until the first result row, #charts until a run has finished.

import uPlot from './vendor/uplot/uPlot.esm.js';
import { HeartboxWorker } from './heartbox.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
for (const k of ['size', 'batches', 'reps', 'threads']) if (params.has(k)) $(k).value = params.get(k);
let results = null;
let charts = [];

function plot(el, title, yLabel, key, runs, batches) {
  const data = [batches, ...runs.map((r) => batches.map((b) => {
    const p = r.points.find((q) => q.batch === b);
    return p && !p.error ? p[key] : null;
  }))];
  const colors = ['#1f77b4', '#d62728', '#2ca02c'];
  return new uPlot({
    title, width: Math.min(900, el.clientWidth || 900), height: 260,
    scales: { x: { time: false, distr: 3, log: 2 }, y: { auto: true } },
    axes: [{ label: 'batch size (slices)' }, { label: yLabel }],
    series: [{ label: 'batch' }, ...runs.map((r, i) => ({ label: `${r.threads} thread${r.threads > 1 ? 's' : ''}`, stroke: colors[i % 3], width: 2, points: { show: true } }))],
  }, data, el);
}

function addRow(threads, p) {
  const tr = document.createElement('tr');
  const cells = p.error ? [threads, p.batch, p.error, ''] : [threads, p.batch, p.ms_per_batch.toFixed(1), p.ms_per_frame.toFixed(3)];
  for (const c of cells) { const td = document.createElement('td'); td.textContent = c; tr.append(td); }
  $('results').tBodies[0].append(tr);
  $('results-card').hidden = false;
}

async function start() {
  const size = Number($('size').value);
  const batches = $('batches').value.split(',').map((s) => parseInt(s, 10)).filter((b) => b > 0);
  const reps = Math.max(1, Number($('reps').value) || 1);
  const multi = Math.max(2, Number($('threads').value) || 2);
  $('start').disabled = true; $('download').disabled = true;
  document.body.dataset.state = 'running';
  $('results').tBodies[0].replaceChildren();
  charts.forEach((c) => c.destroy()); charts = [];
  $('results-card').hidden = true; $('charts').hidden = true;
  const configs = [1];
  if (self.crossOriginIsolated) configs.push(multi);
  const total = configs.length * batches.length;
  let done = 0;
  const runs = [];
  try {
    for (const n of configs) {
      const w = new HeartboxWorker({ numThreads: n });
      $('status').textContent = `Running ${n} thread(s)…`;
      const r = await w.bench({
        batches, size, reps, modelUrl: params.get('model') || undefined, inputName: params.get('input') || undefined,
        onPoint: (m) => { done += 1; $('progress').value = done / total; addRow(m.threads, m.point); },
      });
      w.terminate();
      runs.push({ requested_threads: n, threads: r.threads, init_ms: r.init_ms, points: r.points });
    }
    results = {
      schema: 'heartbox.speed/1', created: new Date().toISOString(), user_agent: navigator.userAgent,
      hardware_concurrency: navigator.hardwareConcurrency, cross_origin_isolated: self.crossOriginIsolated,
      slice_size: [size, size], repeats: reps, batches, runs, model: params.get('model') || 'heartbox.onnx',
    };
    window.heartboxSpeedResults = results;
    $('charts').hidden = false; // before plotting, so the charts get the card's width
    charts.push(plot($('chart-batch'), 'Latency per batch', 'ms / batch', 'ms_per_batch', runs, batches));
    charts.push(plot($('chart-frame'), 'Latency per frame', 'ms / frame', 'ms_per_frame', runs, batches));
    $('status').textContent = self.crossOriginIsolated ? 'Done.' : 'Done (page not cross-origin isolated: single thread only).';
    $('download').disabled = false;
    document.body.dataset.state = 'done';
  } catch (e) {
    $('status').textContent = `Failed: ${e.message}`;
    document.body.dataset.state = 'error';
  } finally {
    $('start').disabled = false;
  }
}

$('start').addEventListener('click', start);
$('download').addEventListener('click', () => {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([JSON.stringify(results, null, 2)], { type: 'application/json' }));
  a.download = 'heartbox-speed.json';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
if (params.get('auto') === '1') start();
