"""The per-slice heart network: 3 × 64×64 mean-HU cells (z context) → 64×64 heart logits.

A MobileNetV3-flavoured encoder (depthwise-separable blocks, squeeze-excite
gate from the 4×4 global context) with a light U-Net decoder (additive skips
at 8×8, 16×16 and 32×32, bilinear upsampling). ReLU everywhere; BatchNorm is
folded into the convolutions at export. Input is the preprocessing graph's
``context_cells`` (float32 ``[N, 3, 64, 64]``: mean windowed HU per cell of
the slices ``z - k``, ``z``, ``z + k``, as channels); the first operation
normalises it with the constants of :mod:`napari_heartbox.model.graph`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from napari_heartbox.model.graph import CONTEXT, NORM_CENTER, NORM_SCALE


def _cbr(cin, cout, k=1, s=1, groups=1, dil=1):
    pad = dil * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, pad, dilation=dil, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DSBlock(nn.Module):
    """Depthwise k×k (stride s) + pointwise; residual when shapes match."""

    def __init__(self, cin, cout, k=3, s=1, dil=1):
        super().__init__()
        self.dw = _cbr(cin, cin, k, s, groups=cin, dil=dil)
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        return F.relu(y + x) if self.res else F.relu(y)


def _up(x, like=None):
    """×2 bilinear upsampling (half-pixel centres; exports as one static Resize)."""
    return F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=False)


class HeartNet(nn.Module):
    """``context_cells [N, 3, 64, 64]`` → heart logits of the centre slices ``[N, 64, 64]``."""

    def __init__(self, c=(8, 16, 48, 64)):
        super().__init__()
        c1, c2, c3, c4 = c
        self.stem = _cbr(CONTEXT, c1, 3, 2)  # 32×32; z context as input channels
        self.e2 = DSBlock(c1, c2, 3, 2)  # 16×16
        self.e2b = DSBlock(c2, c2, 3)
        self.e3 = DSBlock(c2, c3, 3, 2)  # 8×8
        self.e3b = DSBlock(c3, c3, 5)
        self.e3c = DSBlock(c3, c3, 3, dil=2)
        self.e4 = DSBlock(c3, c4, 3, 2)  # 4×4
        self.e4b = DSBlock(c4, c4, 3)
        self.gate = nn.Sequential(nn.Linear(c4, c3), nn.Sigmoid())  # global context
        self.p4 = nn.Sequential(nn.Conv2d(c4, c3, 1, bias=False), nn.BatchNorm2d(c3))
        self.d3 = DSBlock(c3, c2, 3)  # 8×8
        self.d2 = DSBlock(c2, c1, 3)  # 16×16
        self.d1 = DSBlock(c1, c1, 3)  # 32×32
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(self, context_cells):
        x = (context_cells - NORM_CENTER) / NORM_SCALE
        s1 = self.stem(x)
        s2 = self.e2b(self.e2(s1))
        s3 = self.e3c(self.e3b(self.e3(s2)))
        s4 = self.e4b(self.e4(s3))
        g = self.gate(s4.mean(dim=(2, 3)))[:, :, None, None]
        y = F.relu(s3 * g + _up(self.p4(s4), s3))
        y = self.d3(y)  # 8×8, c2
        y = F.relu(_up(y, s2) + s2)
        y = self.d2(y)  # 16×16, c1
        y = F.relu(_up(y, s1) + s1)
        y = self.d1(y)  # 32×32
        logit = self.head(y)
        return _up(logit, x).squeeze(1)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm folds into conv weights at export)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, hw: int = 64) -> int:
    """Multiply-accumulates of one 64×64 slice (Conv2d and Linear layers)."""
    macs = 0

    def conv_hook(m, inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1]
        macs += out.numel() // out.shape[0] * k * m.in_channels // m.groups

    def lin_hook(m, inp, out):
        nonlocal macs
        macs += m.in_features * m.out_features

    hooks = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else lin_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, CONTEXT, hw, hw))
    model.train(was)
    for h in hooks:
        h.remove()
    return macs
