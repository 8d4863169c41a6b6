"""Build the preprocessing part of the heart model as an ONNX graph.

The preprocessing lives ONLY here, as ONNX: training data are produced by
running this graph in onnxruntime, and the shipped model is this graph
composed with the network (see ``models/export.py``). Python never
re-implements it (the numpy reference in the tests exists only to check it).

Definition (``hu`` int16 ``[N, H, W]``, ``context`` int64 ``[M, 3]`` →
``context_cells`` float32 ``[M, 3, 64, 64]``)
---------------------------------------------------------------------------
1. ``x = float32(hu)`` — HU values are integers, so this is exact.
2. Window: ``x = clip(x, HU_LO, HU_HI)``. Values stay integers.
3. Pad bottom/right with air (``-1024`` HU, i.e. ``clip(-1024)``) to
   ``64·kH × 64·kW`` pixels, ``kH = ceil(H/64)``, ``kW = ceil(W/64)``.
4. Area sum per cell: cell ``(r, c)`` = sum of the ``kH×kW`` pixels in rows
   ``[r·kH, (r+1)·kH)`` and columns ``[c·kW, (c+1)·kW)``. Done as two
   ReduceSum (kW columns, then kH rows). Every partial sum is an integer of
   magnitude below ``2**24`` (for ``kH·kW ≤ 4096``, i.e. up to 4096² pixels),
   so float32 sums are exact and independent of summation order: the result
   is bit-identical in numpy, onnxruntime and onnxruntime-web.
5. ``cell_hu = sum / (kH·kW)`` (one IEEE division: correctly rounded,
   identical across runtimes), float32 ``[N, 64, 64]``.
6. z context: ``context_cells[m, j] = cell_hu[context[m, j]]`` (Gather on
   axis 0). Row ``m`` of ``context`` holds the positions in ``hu`` of the
   slices ``z - k``, ``z`` and ``z + k`` of the ``m``-th scored slice
   (:func:`napari_heartbox.model.zschedule.context_rows`); the caller passes
   just the slices these rows read, each once
   (:func:`~napari_heartbox.model.zschedule.gather_rows`).

The normalisation (``(cell_hu - NORM_CENTER) / NORM_SCALE``) is the first
operation of the network, not of this graph.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    'CELLS',
    'CONTEXT',
    'HU_HI',
    'HU_LO',
    'NORM_CENTER',
    'NORM_SCALE',
    'OPSET',
    'PAD_HU',
    'build_preprocess_model',
]

CELLS = 64  # output cells per side
HU_LO = -1024  # window (HU): lower clip = air
HU_HI = 600  # upper clip: above contrast blood; bone and metal saturate here
PAD_HU = -1024  # padding value (air) before the window is applied
NORM_CENTER = -300.0  # network input = (cell_hu - NORM_CENTER) / NORM_SCALE
NORM_SCALE = 500.0
OPSET = 17
INPUT_NAME = 'hu'
CONTEXT_NAME = 'context'  # int64 [M, 3]: positions in hu of (z - k, z, z + k)
OUTPUT_NAME = 'context_cells'  # float32 [M, 3, 64, 64]
CONTEXT = 3  # slices per scored slice (the network's input channels)


def _cell_sum_graph(src: str, name: str, *, pad: bool):
    """Subgraph: (optionally pad ``src``, then) sum each kH×kW cell.

    Uses outer-scope values ``pads``, ``padv``, ``s1``, ``s2``, ``m1``,
    ``i2``. 4a sums kH adjacent rows (``[N, 64, kH, Wp]`` → ``[N, 64, Wp]``:
    contiguous row adds, cheap), 4b sums kW adjacent columns
    (``[N, 64, 64, kW]`` → ``[N, 64, 64]``) on kH× less data.
    """
    from onnx import TensorProto, helper

    p = f'{name}_'
    nodes = []
    x = src
    if pad:
        nodes.append(helper.make_node('Pad', [src, 'pads', 'padv'], [p + 'xp'], mode='constant'))
        x = p + 'xp'
    out = p + 'sum'
    nodes += [
        helper.make_node('Reshape', [x, 's1'], [p + 'r1']),
        helper.make_node('ReduceSum', [p + 'r1', 'i2'], [p + 'c'], keepdims=0),
        helper.make_node('Reshape', [p + 'c', 's2'], [p + 'r2']),
        helper.make_node('ReduceSum', [p + 'r2', 'm1'], [out], keepdims=0),
    ]
    return helper.make_graph(
        nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)]
    )


def build_preprocess_model():
    """Return the preprocessing ``onnx.ModelProto`` (``hu``, ``context`` → ``context_cells``).

    Needs the ``onnx`` package (a build/test-time dependency, not needed to
    run the shipped model).
    """
    import onnx
    from onnx import TensorProto, helper

    def const(name, value, dtype):
        arr = np.asarray(value, dtype=dtype)
        return helper.make_node(
            'Constant', [], [name], value=onnx.numpy_helper.from_array(arr, name)
        )

    pad_value = float(min(max(PAD_HU, HU_LO), HU_HI))
    nodes = [
        const('lo', float(HU_LO), np.float32),
        const('hi', float(HU_HI), np.float32),
        const('padv', pad_value, np.float32),
        const('c64', [CELLS], np.int64),
        const('c63', [CELLS - 1], np.int64),
        const('i1', [1], np.int64),
        const('i2', [2], np.int64),
        const('zero_i', 0, np.int64),
        const('m1', [-1], np.int64),
        const('zeros4', [0, 0, 0, 0], np.int64),
        # geometry: kH = (H + 63) // 64 (int64 Div truncates; H > 0)
        helper.make_node('Shape', ['hu'], ['shp']),
        helper.make_node('Gather', ['shp', 'i1'], ['H'], axis=0),
        helper.make_node('Gather', ['shp', 'i2'], ['W'], axis=0),
        helper.make_node('Add', ['H', 'c63'], ['H63']),
        helper.make_node('Div', ['H63', 'c64'], ['kH']),
        helper.make_node('Add', ['W', 'c63'], ['W63']),
        helper.make_node('Div', ['W63', 'c64'], ['kW']),
        helper.make_node('Mul', ['kH', 'c64'], ['Hp']),
        helper.make_node('Mul', ['kW', 'c64'], ['Wp']),
        helper.make_node('Sub', ['Hp', 'H'], ['padH']),
        helper.make_node('Sub', ['Wp', 'W'], ['padW']),
        # pads = [0,0,0, 0,padH,padW] (begin z,y,x then end z,y,x)
        helper.make_node('Concat', ['zeros4', 'padH', 'padW'], ['pads'], axis=0),
        # 1-2. cast + window (exact integers in float32)
        helper.make_node('Cast', ['hu'], ['x_f'], to=TensorProto.FLOAT),
        helper.make_node('Clip', ['x_f', 'lo', 'hi'], ['x_w']),
        # 3-4. pad with air (only when needed: a Pad with zero pads would still
        # copy the whole float volume) and sum each kH×kW cell
        helper.make_node('Concat', ['m1', 'c64', 'kH', 'Wp'], ['s1'], axis=0),
        helper.make_node('Concat', ['m1', 'c64', 'c64', 'kW'], ['s2'], axis=0),
        helper.make_node('ReduceMax', ['pads'], ['pad_max'], keepdims=0),
        helper.make_node('Greater', ['pad_max', 'zero_i'], ['need_pad']),
        helper.make_node(
            'If',
            ['need_pad'],
            ['x_s'],
            then_branch=_cell_sum_graph('x_w', 'pad_then', pad=True),
            else_branch=_cell_sum_graph('x_w', 'pad_else', pad=False),
        ),
        # 5. mean = sum / (kH*kW)
        helper.make_node('Mul', ['kH', 'kW'], ['area_i']),
        helper.make_node('Cast', ['area_i'], ['area'], to=TensorProto.FLOAT),
        helper.make_node('Div', ['x_s', 'area'], ['cell_hu']),
        # 6. z context: rows of cell_hu picked by the context indices
        helper.make_node('Gather', ['cell_hu', CONTEXT_NAME], [OUTPUT_NAME], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        'heartbox_preprocess',
        [
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT16, ['N', 'H', 'W']),
            helper.make_tensor_value_info(CONTEXT_NAME, TensorProto.INT64, ['M', CONTEXT]),
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ['M', CONTEXT, CELLS, CELLS])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid('', OPSET)],
        producer_name='napari-heartbox',
    )
    model.ir_version = 8  # readable by onnxruntime >= 1.14 and onnxruntime-web 1.30
    onnx.checker.check_model(model, full_check=True)
    return model
