"""The ONNX preprocessing graph and the bundled model file (docs/model.md)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from model_limits import (  # tests/model_limits.py
    MAX_BYTES,
    MAX_OPSET,
    MAX_PARAMS,
    WASM_OPS,
)

from napari_heartbox.errors import ModelError
from napari_heartbox.model import HeartModel
from napari_heartbox.model.card import (
    CARD_NAME,
    ONNX_NAME,
    assets_dir,
    load_card,
    sha256_file,
)
from napari_heartbox.model.graph import HU_HI, HU_LO, PAD_HU, build_preprocess_model


def reference_cells(hu: np.ndarray) -> np.ndarray:
    """numpy reference of the graph's definition (test-only, never in the package)."""
    n, h, w = hu.shape
    kh, kw = -(-h // 64), -(-w // 64)
    x = np.full((n, 64 * kh, 64 * kw), PAD_HU, np.float32)
    x[:, :h, :w] = hu
    x = np.clip(x, HU_LO, HU_HI)
    s = x.reshape(n, 64, kh, 64, kw).sum(axis=(2, 4), dtype=np.float64)  # exact integers
    return s.astype(np.float32) / np.float32(kh * kw)


@pytest.fixture(scope='module')
def prep():
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(
        build_preprocess_model().SerializeToString(), so, providers=['CPUExecutionProvider']
    )


@pytest.mark.parametrize(
    'shape', [(3, 512, 512), (2, 768, 768), (1, 1024, 1024), (2, 500, 600), (2, 101, 112), (1, 64, 64), (1, 65, 1)]
)
def test_preprocessing_is_bit_exact_against_numpy_reference(prep, shape):
    rng = np.random.default_rng(sum(shape))
    hu = rng.integers(-32768, 32768, size=shape).astype(np.int16)
    hu[..., : shape[-1] // 2] = rng.integers(-1100, 700, size=hu[..., : shape[-1] // 2].shape)
    got = prep.run(None, {'hu': hu, 'context': _same(shape[0])})[0][:, 1]
    assert got.shape == (shape[0], 64, 64) and got.dtype == np.float32
    ref = reference_cells(hu)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def _same(n):
    """Context rows that pick each slice three times: (i, i, i)."""
    return np.repeat(np.arange(n, dtype=np.int64)[:, None], 3, axis=1)


def test_preprocessing_gathers_the_context_rows(prep):
    """Row m of the output holds the cells of slices context[m, 0..2], in that
    order; a slice may serve several rows and rows need not be sorted."""
    rng = np.random.default_rng(3)
    hu = rng.integers(-1100, 700, size=(4, 130, 70)).astype(np.int16)
    rows = np.array([[0, 1, 2], [3, 3, 0], [1, 1, 1], [2, 0, 3], [0, 2, 3]], np.int64)
    got = prep.run(None, {'hu': hu, 'context': rows})[0]
    assert got.shape == (5, 3, 64, 64)
    ref = reference_cells(hu)
    assert np.array_equal(got, ref[rows])


def test_preprocessing_pads_with_air(prep):
    hu = np.full((1, 500, 600), 40, np.int16)  # soft tissue everywhere
    got = prep.run(None, {'hu': hu, 'context': _same(1)})[0][0, 0]
    # kH = 8: cell row 62 covers rows 496..503, 4 of them padding (-1024)
    assert got[0, 0] == 40.0
    assert got[62, 0] == np.float32((4 * 40 + 4 * -1024) / 8)
    assert got[63, 0] == -1024.0 and got[0, 60] == -1024.0


def _ops(model):
    ops, domains = set(), set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type)
            domains.add(n.domain)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)

    walk(model.graph)
    return ops, domains


def test_preprocessing_graph_uses_only_wasm_ops():
    m = build_preprocess_model()
    ops, domains = _ops(m)
    assert ops <= WASM_OPS, ops - WASM_OPS
    assert domains <= {''}
    assert max(o.version for o in m.opset_import if o.domain in ('', 'ai.onnx')) <= MAX_OPSET


# ---------------------------------------------------------------- bundled model
@pytest.fixture(scope='module')
def bundled():
    path = assets_dir() / ONNX_NAME
    assert path.is_file(), 'the bundled model is committed (python -m models.train writes it)'
    return path


def test_bundled_model_ops_opset_size_and_params(bundled):
    m = onnx.load(str(bundled))
    ops, domains = _ops(m)
    assert ops <= WASM_OPS, ops - WASM_OPS
    assert domains <= {''}
    assert all(o.version <= MAX_OPSET for o in m.opset_import if o.domain in ('', 'ai.onnx'))
    assert [i.name for i in m.graph.input] == ['hu', 'context']
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT16
    assert m.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [o.name for o in m.graph.output] == ['prob']
    n_params = sum(int(np.prod(t.dims)) for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    n_params += sum(
        int(np.prod(a.t.dims))
        for node in m.graph.node
        if node.op_type == 'Constant'
        for a in node.attribute
        if a.name == 'value' and a.t.data_type == onnx.TensorProto.FLOAT
    )
    assert 1000 < n_params <= MAX_PARAMS
    assert bundled.stat().st_size <= MAX_BYTES


def test_card_matches_the_bundled_file(bundled):
    card = load_card(bundled.with_name(CARD_NAME))
    assert card['sha256'] == sha256_file(bundled)
    assert card['bytes'] == bundled.stat().st_size
    assert [i['name'] for i in card['inputs']] == ['hu', 'context'] and card['outputs'][0]['name'] == 'prob'
    pp = card['postprocess']
    assert 0 < pp['threshold'] < 1 and pp['min_heart_volume_ml'] > 0 and pp['default_margin_mm'] >= 0


def test_model_runs_on_odd_sizes_and_chunks_agree(bundled):
    model = HeartModel()
    rng = np.random.default_rng(1)
    hu = rng.integers(-1024, 400, size=(5, 500, 600)).astype(np.int16)
    prob = model.predict(hu, 2.0)
    assert prob.shape == (5, 64, 64) and prob.dtype == np.float32
    assert np.all((prob >= 0) & (prob <= 1))
    # chunking does not change the result: each chunk reads its rows' context slices
    one = HeartModel(batch=1, threads=1).predict(hu, 2.0)
    np.testing.assert_allclose(prob, one, atol=1e-5)
    # the z context matters: slice 2 scored with other neighbours gives other values
    k = model.context_offset(2.0)
    rows = np.array([[max(2 - k, 0), 2, min(2 + k, 4)], [2, 2, 2]])
    ctx = model.predict_rows(hu, rows)
    np.testing.assert_allclose(ctx[0], prob[2], atol=1e-5)
    assert np.abs(ctx[1] - ctx[0]).max() > 1e-4


def test_tampered_model_is_refused(bundled, tmp_path):
    onnx_copy = tmp_path / ONNX_NAME
    shutil.copyfile(bundled, onnx_copy)
    shutil.copyfile(bundled.with_name(CARD_NAME), tmp_path / CARD_NAME)
    HeartModel(onnx_copy)  # an intact copy loads
    data = bytearray(onnx_copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match='does not match the model card'):
        HeartModel(onnx_copy)


def test_missing_model_and_bad_card_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match='no model bundled yet'):
        HeartModel(tmp_path / ONNX_NAME)
    (tmp_path / ONNX_NAME).write_bytes(b'not a model')
    (tmp_path / CARD_NAME).write_text(json.dumps({'name': 'x'}))
    with pytest.raises(ModelError, match='lacks'):
        HeartModel(tmp_path / ONNX_NAME)


def test_a_per_slice_graph_runs_without_context(bundled, tmp_path):
    """A graph with the one input ``hu`` (a per-slice model, card without
    ``z_context_mm``) gets no context feed, and its outputs come back in the
    order of the requested slices; with ``z_context_mm`` in its card it is
    refused with a clear error."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node('Cast', ['hu'], ['f'], to=TensorProto.FLOAT),
            helper.make_node('Constant', [], ['s'], value=helper.make_tensor('s', TensorProto.FLOAT, [], [1e-3])),
            helper.make_node('Mul', ['f', 's'], ['g']),
            helper.make_node('Sigmoid', ['g'], ['prob']),
        ],
        'per_slice',
        [helper.make_tensor_value_info('hu', TensorProto.INT16, ['N', 64, 64])],
        [helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 64, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    path = tmp_path / ONNX_NAME
    path.write_bytes(model.SerializeToString())
    card = load_card(bundled.with_name(CARD_NAME))
    card['sha256'] = sha256_file(path)
    card['postprocess'].pop('z_context_mm')
    (tmp_path / CARD_NAME).write_text(json.dumps(card))
    hu = (np.arange(5, dtype=np.int16)[:, None, None] * 100 * np.ones((1, 64, 64), np.int16)).astype(np.int16)
    got = HeartModel(path, batch=2, threads=1).predict(hu, 1.0, slices=np.array([3, 1, 4]))
    np.testing.assert_allclose(got[:, 0, 0], 1 / (1 + np.exp(-np.array([0.3, 0.1, 0.4]))), rtol=1e-6)
    card['postprocess']['z_context_mm'] = 8.0
    (tmp_path / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(ModelError, match='no context input'):
        HeartModel(path).predict(hu, 1.0)
