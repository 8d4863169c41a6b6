"""Rebuild a trainable :class:`~napari_heartbox._training.net.HeartNet` from a shipped ONNX graph.

The exported graph holds the network with BatchNorm folded into each
convolution (weight ``W·γ/σ``, bias ``β − μγ/σ``). To train it again we load
each folded weight into its convolution and turn the BatchNorm after it into
``x + bias``: running mean 0, running variance 1, ``γ = sqrt(1 + eps)``,
``β`` = the folded bias. Fine-tuning keeps these BatchNorms in eval mode
(fixed statistics), so the network computes exactly what the graph computes
(checked against onnxruntime by :func:`check_against_onnx`).

The graph's convolutions appear in the network's forward order, which is
also the order of the modules in ``HeartNet.__init__``; shapes are checked
one by one, so a graph of another architecture is refused with a message.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from napari_heartbox.errors import HeartboxError

NET_PREFIX = 'net_'  # models/export.compose prefixes the network's names


def _conv_bn_pairs(net):
    """``[(conv, bn or None)]`` in module order."""
    from torch import nn

    bn_of = {}
    for m in net.modules():
        if isinstance(m, nn.Sequential) and len(m) >= 2 and isinstance(m[0], nn.Conv2d) \
                and isinstance(m[1], nn.BatchNorm2d):
            bn_of[id(m[0])] = m[1]
    return [(m, bn_of.get(id(m))) for m in net.modules() if isinstance(m, nn.Conv2d)]


def net_from_onnx(onnx_path):
    """A :class:`HeartNet` carrying the weights of the network inside ``onnx_path``.

    Raises :class:`HeartboxError` when the graph is not a HeartNet export.
    """
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    from .net import HeartNet

    path = Path(onnx_path)
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs, gemms = [], []
    for node in model.graph.node:
        w = [inits[i] for i in node.input[1:] if i in inits]
        if node.op_type == 'Conv' and node.input[1].startswith(NET_PREFIX):
            convs.append((w[0], w[1] if len(w) > 1 else None))
        elif node.op_type == 'Gemm' and node.input[1].startswith(NET_PREFIX):
            gemms.append((w[0], w[1] if len(w) > 1 else None))
    net = HeartNet()
    pairs = _conv_bn_pairs(net)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if len(convs) != len(pairs) or len(gemms) != len(linears):
        raise HeartboxError(
            f'{path}: not a napari-heartbox network ({len(convs)} convolutions and {len(gemms)} dense '
            f'layers, the architecture has {len(pairs)} and {len(linears)})'
        )
    with torch.no_grad():
        for k, ((w, b), (conv, bn)) in enumerate(zip(convs, pairs, strict=True)):
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise HeartboxError(
                    f'{path}: convolution {k} has weights {tuple(w.shape)}, the architecture '
                    f'{tuple(conv.weight.shape)}'
                )
            conv.weight.copy_(torch.from_numpy(np.array(w, np.float32)))
            bias = torch.zeros(w.shape[0]) if b is None else torch.from_numpy(np.array(b, np.float32))
            if bn is not None:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(math.sqrt(1.0 + bn.eps))
                bn.bias.copy_(bias)
            else:
                conv.bias.copy_(bias)
        for (w, b), lin in zip(gemms, linears, strict=True):
            if tuple(w.shape) != tuple(lin.weight.shape):
                raise HeartboxError(f'{path}: dense layer weights {tuple(w.shape)} do not fit the architecture')
            lin.weight.copy_(torch.from_numpy(np.array(w, np.float32)))
            lin.bias.copy_(torch.from_numpy(np.array(b, np.float32)))
    return net.eval()


def freeze_batchnorm(net) -> None:
    """Put every BatchNorm in eval mode (fixed statistics; γ, β still train)."""
    from torch import nn

    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def check_against_onnx(net, onnx_path, cells: np.ndarray) -> float:
    """Largest |prob difference| between ``net`` and the graph's network on ``cells``
    (float32 ``[M, 3, 64, 64]`` context cells)."""
    import onnx
    import onnxruntime as ort
    import torch

    model = onnx.load(str(onnx_path))
    # the network part alone: the subgraph from the preprocessing output context_cells to prob
    sub = onnx.utils.Extractor(model).extract_model(['context_cells'], ['prob'])
    sess = ort.InferenceSession(sub.SerializeToString(), providers=['CPUExecutionProvider'])
    ref = sess.run(None, {'context_cells': cells.astype(np.float32)})[0]
    with torch.no_grad():
        got = torch.sigmoid(net.eval()(torch.from_numpy(cells.astype(np.float32)))).numpy()
    return float(np.abs(got - ref).max())
