"""Speed regression guards that do not time anything (issue 6 §3).

* the bundled inference graph keeps a bounded size and only the operator
  types the browser runtime (onnxruntime-web, wasm) is known to run;
* ``load_ct`` opens each slice file at most twice (header pass + pixel
  pass), lists the folder a bounded number of times, and reads about the
  folder's bytes once (``rchar`` from ``/proc/self/io``), so a loader that
  re-parses or re-reads every file shows up here, not only in a benchmark;
* ``python -m benchmarks --quick`` runs end to end (slow).

Timings themselves live in ``benchmarks/`` (shared machines make timing
assertions flaky).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from model_limits import MAX_BYTES, MAX_PARAMS, WASM_OPS  # tests/model_limits.py

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------- the graph
MAX_NODES = 200  # all nodes, If branches included (first trained model: 121)
MAX_CONV = 40  # (first trained model: 23)


def _bundled_model_path() -> Path:
    from napari_heartbox.model import HeartModel

    return HeartModel.default().onnx_path


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)


def test_inference_graph_size_and_ops_are_bounded():
    onnx = pytest.importorskip('onnx')
    path = _bundled_model_path()
    model = onnx.load(str(path))
    nodes = list(_all_nodes(model.graph))
    ops = Counter(n.op_type for n in nodes)
    assert not set(ops) - WASM_OPS, (
        f'operators outside the wasm set: {set(ops) - WASM_OPS}'
    )
    assert all(n.domain in ('', 'ai.onnx') for n in nodes), 'custom-domain operators'
    assert len(nodes) <= MAX_NODES, (
        f'{len(nodes)} nodes > {MAX_NODES}: {ops.most_common(8)}'
    )
    assert ops['Conv'] <= MAX_CONV
    # weights = float initializers + float Constant tensors (BatchNorm folded at export)
    params = sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT
    )
    params += sum(
        int(np.prod(a.t.dims))
        for n in nodes
        if n.op_type == 'Constant'
        for a in n.attribute
        if a.name == 'value' and a.t.data_type == onnx.TensorProto.FLOAT
    )
    assert params <= MAX_PARAMS
    assert path.stat().st_size <= MAX_BYTES
    # the int16 [N, H, W] slices and the int64 [M, 3] z-context rows in, the
    # probabilities out: nothing re-implemented outside
    inp, ctx = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT16
    assert len(inp.type.tensor_type.shape.dim) == 3
    assert ctx.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert len(ctx.type.tensor_type.shape.dim) == 2
    assert 'prob' in [o.name for o in model.graph.output]


# ------------------------------------------------------------- file reads
_COUNT_OPENS = r"""
import collections, json, os, sys
from pathlib import Path

folder = str(Path(sys.argv[1]).resolve())
opens = collections.Counter()
listings = collections.Counter()
armed = False


def hook(event, args):
    if not armed:
        return
    if event == 'open' and args and isinstance(args[0], (str, os.PathLike)):
        p = os.path.abspath(os.fspath(args[0]))
        if p.startswith(folder):
            opens[p] += 1
    elif event in ('os.listdir', 'os.scandir', 'os.walk', 'glob.glob'):
        listings[event] += 1


def rchar():
    for line in open('/proc/self/io'):
        if line.startswith('rchar:'):
            return int(line.split()[1])


sys.addaudithook(hook)
from napari_heartbox.io import load_ct  # imports before arming: not counted

r0 = rchar()
armed = True
vol = load_ct(sys.argv[1])
armed = False
print(json.dumps({'shape': list(vol.shape), 'opens': opens, 'listings': sum(listings.values()),
                  'rchar': rchar() - r0}))
"""


def _load_with_counts(folder: Path) -> dict:
    r = subprocess.run(
        [sys.executable, '-c', _COUNT_OPENS, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check_reads(folder: Path, out: dict, max_opens_per_file: int = 2) -> None:
    files = [p for p in folder.rglob('*') if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    opens = out['opens']
    assert out['shape'][0] == len(files)
    assert set(opens) == {str(p.resolve()) for p in files}, 'every slice file is read'
    assert max(opens.values()) <= max_opens_per_file, (
        f'a file opened {max(opens.values())} times'
    )
    assert out['listings'] <= 4 + sum(1 for p in folder.rglob('*') if p.is_dir())
    # bytes read (rchar: every read syscall, module files imported on the way
    # included): the folder once, plus header read-ahead per file and 4 MiB
    # slack; a second full read of the pixels would exceed it
    assert out['rchar'] <= total + 16 * 1024 * len(files) + 4 * 2**20, (
        out['rchar'],
        total,
    )


@pytest.mark.skipif(
    not Path('/proc/self/io').exists(), reason='needs Linux /proc/self/io'
)
def test_load_ct_reads_each_slice_once(tmp_path):
    from napari_heartbox.io import write_dicom_series
    from napari_heartbox.volume import CTVolume

    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 400, (30, 512, 512)).astype(np.int16)  # 0.5 MB per file
    folder = tmp_path / 'ct'
    write_dicom_series(
        CTVolume.from_array(hu, spacing=(2.0, 0.7, 0.7)), folder, shuffle_names=True
    )
    _check_reads(folder, _load_with_counts(folder))


@pytest.mark.realdata
@pytest.mark.skipif(
    not Path('/proc/self/io').exists(), reason='needs Linux /proc/self/io'
)
def test_load_ct_reads_each_compressed_slice_once(shared_data):
    """JPEG-lossless real series: decoding must not re-open or re-read files either."""
    folder = shared_data / 'ct' / 'ricord-1a-001012' / 'dicom'
    if not folder.is_dir():
        pytest.skip(f'{folder} not found')
    _check_reads(folder, _load_with_counts(folder))


# -------------------------------------------------------- benchmark smoke
@pytest.mark.slow
def test_benchmarks_quick_runs_end_to_end(tmp_path):
    """``python -m benchmarks --quick`` writes its JSON (and plots) without error."""
    r = subprocess.run(
        [sys.executable, '-m', 'benchmarks', '--quick', '--out-dir', str(tmp_path / 'res'),
         '--plots-dir', str(tmp_path / 'img'), '--tag', 'smoke', '--skip', 'browser,cli'],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / 'res' / 'smoke.json').read_text())
    assert res['schema'] == 'heartbox.bench/1'
    (size,) = res['sizes'].values()
    folder = size['folder']
    assert 'skipped' not in folder, folder
    assert folder['stages_s']['discovery+header']['n'] == res['settings']['repeats']
    assert size['memory']['peak_rss_mib'] > size['memory']['volume_mib']
    if 'skipped' in res['model']:
        assert 'no model' in res['model']['skipped']
    else:
        assert size['in_memory']['ratio_a'] > 0 and folder['ratio_b'] > 0
        assert {'heartbox_1t', 'heartbox_2t'} <= set(res['batch_curve'])
    assert {'seed_1t', 'seed_2t'} <= set(res['batch_curve'])
    assert sorted(p.name for p in (tmp_path / 'img').iterdir()) == [
        'batch_curve_latency.png',
        'batch_curve_per_frame.png',
    ]
    assert 'results written to' in r.stdout


@pytest.mark.slow
@pytest.mark.browser
def test_benchmarks_quick_browser_section(tmp_path):
    """The browser section (chromium + playwright) measures ratio (c) and per-batch ratio (d)."""
    r = subprocess.run(
        [sys.executable, '-m', 'benchmarks', '--quick', '--out-dir', str(tmp_path), '--tag', 'web',
         '--skip', 'memory,cli,curve,sweep'],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / 'web.json').read_text())
    browser = res['browser']
    if 'skipped' in browser:
        pytest.skip(f'browser benchmark not possible here: {browser["skipped"]}')
    assert browser['summary']['cross_origin_isolated'] is True
    assert browser['ratio_c'] > 0
    assert {'1t', '2t'} <= set(browser['volume']['runs'])
    assert all(v['found'] is not None for v in browser['volume']['runs'].values())
    assert set(browser['ratio_d_per_batch']) >= {'1t'}
