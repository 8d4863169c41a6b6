"""A seed-style baseline pipeline, built once by the benchmark with ``onnx.helper``.

"Seed-style" = what the original browser demo did: a bilinear 512→64 resize
(``Resize``, linear, on float pixels) followed by a ~48k-parameter
MobileNet-like network (depthwise-separable convolutions, 64×64 input, 64×64
logits), then a threshold and a per-axis extent. Weights are random (He
initialisation, fixed seed): valid for timing only. The file is written to a
temp/cache folder and never committed.

Graph: ``hu`` int16 ``[N, 512, 512]`` → Cast → Clip(-160, 240) → scale to
0..255 → Unsqueeze → Resize(linear, ×1/8) → (x - 128) / 64 → network →
logits → Squeeze → Sigmoid → ``prob`` float32 ``[N, 64, 64]`` (the same output
contract as the heart model, so the web worker can run it as a whole pipeline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['build_seed_model', 'seed_model_path', 'seed_box', 'seed_card']

OPSET = 17


def build_seed_model(seed: int = 0):
    """Return ``(onnx.ModelProto, n_params)`` of the seed-style pipeline."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    n_params = 0

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))

    def conv(x, cin, cout, k=1, stride=1, groups=1, relu=True, name=''):
        nonlocal n_params
        w = rng.normal(
            0, np.sqrt(2.0 / (cin // groups * k * k)), (cout, cin // groups, k, k)
        ).astype(np.float32)
        b = np.zeros(cout, np.float32)
        const(name + '_w', w)
        const(name + '_b', b)
        n_params += w.size + b.size
        pad = k // 2
        nodes.append(
            helper.make_node(
                'Conv',
                [x, name + '_w', name + '_b'],
                [name + '_c'],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad] * 4,
                group=groups,
            )
        )
        if not relu:
            return name + '_c'
        nodes.append(helper.make_node('Relu', [name + '_c'], [name]))
        return name

    def sep(x, cin, cout, stride, name):
        dw = conv(x, cin, cin, k=3, stride=stride, groups=cin, name=name + '_dw')
        return conv(dw, cin, cout, name=name + '_pw')

    const('lo', np.float32(-160.0))
    const('hi', np.float32(240.0))
    const('gain', np.float32(255.0 / 400.0))
    const('ax1', np.array([1], np.int64))
    const('scales', np.array([1, 1, 0.125, 0.125], np.float32))
    const('up', np.array([1, 1, 8, 8], np.float32))
    const('c128', np.float32(128.0))
    const('c64', np.float32(64.0))
    nodes += [
        helper.make_node('Cast', ['hu'], ['f'], to=TensorProto.FLOAT),
        helper.make_node('Clip', ['f', 'lo', 'hi'], ['w']),
        helper.make_node('Sub', ['w', 'lo'], ['w0']),
        helper.make_node(
            'Mul', ['w0', 'gain'], ['g']
        ),  # 0..255 grey, as the demo's input
        helper.make_node('Unsqueeze', ['g', 'ax1'], ['g4']),
        helper.make_node('Resize', ['g4', '', 'scales'], ['small'], mode='linear'),
        helper.make_node('Sub', ['small', 'c128'], ['s0']),
        helper.make_node('Div', ['s0', 'c64'], ['x0']),
    ]
    x = conv('x0', 1, 16, k=3, stride=2, name='stem')  # 32×32
    x = sep(x, 16, 24, 1, 'b1')
    x = sep(x, 24, 48, 2, 'b2')  # 16×16
    x = sep(x, 48, 96, 1, 'b3')
    x = sep(x, 96, 128, 2, 'b4')  # 8×8
    x = sep(x, 128, 128, 1, 'b5')
    x = conv(x, 128, 72, name='head')
    x = conv(x, 72, 1, relu=False, name='out')
    nodes.append(helper.make_node('Resize', [x, '', 'up'], ['logits'], mode='linear'))
    const('axis1', np.array([1], np.int64))
    nodes.append(helper.make_node('Squeeze', ['logits', 'axis1'], ['logits2d']))
    nodes.append(helper.make_node('Sigmoid', ['logits2d'], ['prob']))
    graph = helper.make_graph(
        nodes,
        'seed_style_pipeline',
        [helper.make_tensor_value_info('hu', TensorProto.INT16, ['N', 512, 512])],
        [helper.make_tensor_value_info('prob', TensorProto.FLOAT, ['N', 64, 64])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, n_params


def seed_model_path(cache_dir: Path) -> tuple[Path, int]:
    """Build (once) and save the seed-style model under ``cache_dir``."""
    import onnx

    model, n_params = build_seed_model()
    path = Path(cache_dir) / f'seed_style_prob_{n_params}.onnx'
    if not path.exists():
        onnx.save(model, str(path))
    return path, n_params


def seed_box(prob: np.ndarray):
    """The demo's post-processing, vectorised: prob > 0.5 → per-axis extent (cells)."""
    m = prob > 0.5
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    ys = np.flatnonzero(m.any(axis=(0, 2)))
    xs = np.flatnonzero(m.any(axis=(0, 1)))
    return (zs[0], zs[-1] + 1), (ys[0] * 8, ys[-1] * 8 + 8), (xs[0] * 8, xs[-1] * 8 + 8)


def seed_card(path: Path, postprocess: dict) -> dict:
    """A model card for the seed-style graph, so ``export_web`` can bundle it.

    The seed pipeline scores every slice: the heart model's post-processing
    parameters without the slice schedule (``z_step_mm``/``z_refine_mm``), and
    a threshold no cell reaches (see the comment in the body).
    """
    import hashlib

    post = {k: v for k, v in postprocess.items() if k not in ('z_step_mm', 'z_refine_mm', 'z_context_mm')}
    # random weights give a noisy half-positive mask, and timing our component analysis
    # on noise would flatter the ratio; the demo's own post (threshold + extent) costs a
    # few ms. So no cell passes: the seed pipeline is timed as read + parse + inference.
    post['threshold'] = 2.0
    return {
        'name': 'seed-style baseline (random weights, timing only)',
        'version': 'benchmark',
        'sha256': hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        'inputs': [{'name': 'hu', 'dtype': 'int16', 'shape': ['N', 512, 512]}],
        'outputs': [{'name': 'prob', 'dtype': 'float32', 'shape': ['N', 64, 64]}],
        'postprocess': post,
    }
