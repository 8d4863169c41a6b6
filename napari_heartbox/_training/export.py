"""Export the trained network and compose it with the preprocessing graph.

The shipped ``heartbox.onnx`` = preprocessing graph (``hu`` int16 +
``context`` int64 → ``context_cells``) + network (``context_cells`` →
``prob`` = sigmoid(logits)), merged
into ONE graph with ``onnx.compose.merge_models``. BatchNorm is folded into
the convolutions by the exporter (eval mode).
"""

from __future__ import annotations

import io

import onnx
import torch
from torch import nn

from napari_heartbox.model.graph import CONTEXT, OPSET, build_preprocess_model


class _WithSigmoid(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, context_cells):
        return torch.sigmoid(self.net(context_cells))


def export_network(net: nn.Module) -> onnx.ModelProto:
    """The network alone as ONNX: ``context_cells [M,3,64,64]`` → ``prob [M,64,64]``."""
    net = _WithSigmoid(net).eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            net,
            (torch.zeros(2, CONTEXT, 64, 64),),
            buf,
            input_names=['context_cells'],
            output_names=['prob'],
            dynamic_axes={'context_cells': {0: 'M'}, 'prob': {0: 'M'}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def compose(net_model: onnx.ModelProto) -> onnx.ModelProto:
    """Preprocessing + network as one model (inputs ``hu``, ``context``; output ``prob``)."""
    prep = build_preprocess_model()
    net_model.ir_version = prep.ir_version
    prep = onnx.compose.add_prefix(prep, 'pre_', rename_inputs=False, rename_outputs=False)
    net_model = onnx.compose.add_prefix(net_model, 'net_', rename_inputs=False, rename_outputs=False)
    merged = onnx.compose.merge_models(
        prep, net_model, io_map=[('context_cells', 'context_cells')], producer_name='napari-heartbox'
    )
    # merge_models can leave duplicate default-domain opset entries
    seen, keep = set(), []
    for op in merged.opset_import:
        if op.domain not in seen:
            seen.add(op.domain)
            keep.append(op)
    del merged.opset_import[:]
    merged.opset_import.extend(keep)
    merged.graph.name = 'heartbox'
    merged.doc_string = (
        'napari-heartbox heart model: hu int16 [N,H,W] + context int64 [M,3] '
        '-> prob float32 [M,64,64]. '
        'See docs/model.md.'
    )
    onnx.checker.check_model(merged, full_check=True)
    return merged


def graph_ops(model: onnx.ModelProto) -> set[str]:
    """Every op type in the graph, including If subgraphs."""
    ops = set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)

    walk(model.graph)
    return ops


def param_count(model: onnx.ModelProto) -> int:
    """Number of weights stored in the graph's float initializers/constants."""
    n = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            c = 1
            for d in init.dims:
                c *= d
            n += c
    for node in model.graph.node:
        if node.op_type == 'Constant':
            for a in node.attribute:
                if a.name == 'value' and a.t.data_type == onnx.TensorProto.FLOAT:
                    c = 1
                    for d in a.t.dims:
                        c *= d
                    n += c
    return n
