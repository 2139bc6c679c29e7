"""The network of Appendix 7: a ResNet (18, 34 or 50 layers) with a CBAM block (channel, then
spatial attention; Woo et al., ECCV 2018) in every residual block, Mish activations and a
classifier head with dropout. Randomly initialised: nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.Mish(),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x):
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel)

    def forward(self, x):
        return self.spatial(self.channel(x))


class StridedPointwise(nn.Conv2d):
    """A 1 x 1 convolution of stride s, computed as every s-th pixel then a unit-stride 1 x 1
    convolution: the same numbers, the same weights. The oneDNN in torch 2.13 crashes in its
    own strided 1 x 1 backward pass on channels_last inputs of fewer than 16 channels
    (memory written out of bounds; bf16 and fp32 alike), which a narrow ``base_width`` meets.
    The pixels are taken by a 1 x 1 average pool (exact), whose gradient keeps the memory
    format; a slice's would turn channels_last gradients contiguous and slow every layer
    below it threefold."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(cin, cout, 1, bias=False)
        self.step = stride

    def forward(self, x):
        return super().forward(F.avg_pool2d(x, 1, self.step) if self.step > 1 else x)


def _conv_bn(cin, cout, k, stride=1):
    conv = StridedPointwise(cin, cout, stride) if k == 1 else nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(_conv_bn(cin, width, 3, stride), nn.Mish(), _conv_bn(width, cout, 3))
        self.cbam = CBAM(cout)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.Mish()

    def forward(self, x):
        return self.act(self.cbam(self.body(x)) + self.shortcut(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        nn.Module.__init__(self)
        cout = width * self.expansion
        self.body = nn.Sequential(_conv_bn(cin, width, 1), nn.Mish(), _conv_bn(width, width, 3, stride), nn.Mish(),
                                  _conv_bn(width, cout, 1))
        self.cbam = CBAM(cout)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.Mish()


class CBAMResNet(nn.Module):
    """ResNet with CBAM in every residual block and Mish; one DM logit out.

    ``features(x)`` is the penultimate layer (DL_F): the head's hidden layer, or the
    pooled stage-4 features when ``head_hidden`` is 0.
    """

    def __init__(self, depth: int = 18, in_channels: int = 3, base_width: int = 64, head_hidden: int = 64,
                 dropout: float = 0.5):
        super().__init__()
        if depth not in LAYERS:
            raise ValueError(f"depth must be one of {sorted(LAYERS)}, not {depth}")
        kind, counts = LAYERS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.stem = nn.Sequential(nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(base_width), nn.Mish(), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], base_width
        for i, n in enumerate(counts):
            width = base_width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        if head_hidden:
            self.neck = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, head_hidden), nn.Mish())
            out_in = head_hidden
        else:
            self.neck = nn.Identity()
            out_in = cin
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(out_in, 1))
        self.n_features = out_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # each residual branch starts near identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.body[-1][1].weight)

    def features(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.neck(torch.flatten(self.pool(x), 1))

    def forward(self, x):
        return self.head(self.features(x)).squeeze(1)
