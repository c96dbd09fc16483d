"""The small networks behind the demo models.

Layer names are part of the interface: Grad-CAM hooks `layer3` of `ShapesResNet` and `layer2` of
`DigitsCNN` (their last spatial stages). Every ReLU is its own non-inplace module so that
hook-based methods (Captum's DeepLift, guided backprop) can treat each one separately.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block: two conv3x3 + BatchNorm, with a (1x1 conv + BN) skip when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ShapesResNet(nn.Module):
    """ResNet-style CNN for 64×64 RGB: stem (stride 2), stages 16/32/64, global average pool, linear.

    Spatial sizes: stem 32×32 → layer1 32×32 → layer2 16×16 → layer3 16×16 (Grad-CAM target).
    layer3 keeps 16×16 (stride 1) so a Grad-CAM cell is 4×4 pixels, fine enough to compare with masks.
    """

    def __init__(self, n_classes: int, widths: Sequence[int] = (16, 32, 64)):
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, w1, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w1),
            nn.ReLU(),
        )
        self.layer1 = BasicBlock(w1, w1, stride=1)
        self.layer2 = BasicBlock(w1, w2, stride=2)
        self.layer3 = BasicBlock(w2, w3, stride=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w3, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class DigitsCNN(nn.Module):
    """Small CNN for 32×32 greyscale digits: two conv stages with BatchNorm, global average pool, linear.

    Spatial sizes: layer1 16×16 (after max-pool) → layer2 8×8 (Grad-CAM target).
    """

    def __init__(self, n_classes: int = 10, widths: Sequence[int] = (32, 64)):
        super().__init__()
        w1, w2 = widths
        self.layer1 = nn.Sequential(*_conv_bn_relu(1, w1), *_conv_bn_relu(w1, w1), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(*_conv_bn_relu(w1, w2), nn.MaxPool2d(2), *_conv_bn_relu(w2, w2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layer2(self.layer1(x)))))


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics stored as buffers."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        std = torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Unstandardize(nn.Module):
    """y * std + mean: maps a standardised regression output back to the target's units."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor([float(mean)]))
        self.register_buffer("std", torch.tensor([float(std)]))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


class TabularMLP(nn.Module):
    """MLP on raw feature values: standardize → Linear-ReLU-Linear-ReLU → head (→ unstandardize).

    `feature_mean`/`feature_std` are the training split's statistics. Classifiers return one logit
    per class; a regressor given `target_mean`/`target_std` returns (n, 1) in the target's own units.
    """

    def __init__(
        self,
        feature_mean: torch.Tensor,
        feature_std: torch.Tensor,
        n_outputs: int,
        hidden: int = 64,
        target_mean: float | None = None,
        target_std: float | None = None,
    ):
        super().__init__()
        n_features = len(feature_mean)
        self.standardize = Standardize(feature_mean, feature_std)
        self.hidden = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, n_outputs)
        self.unstandardize: nn.Module = nn.Identity()
        if target_mean is not None and target_std is not None:
            self.unstandardize = Unstandardize(target_mean, target_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unstandardize(self.head(self.hidden(self.standardize(x))))


def shapes_vit(n_classes: int, width: int = 64, depth: int = 3, heads: int = 4) -> nn.Module:
    """A small Vision Transformer for 64×64 RGB: torchvision's `VisionTransformer` with a convolutional stem.

    The stem (3×3 convolutions with 16/32/64/64 channels and strides 2/2/1/2, BatchNorm, ReLU, then a 1×1 projection to the
    width: "Early convolutions help transformers see better", Xiao et al. 2021) turns the image into an 8×8 grid of
    tokens, one per 8×8-pixel patch; a class token is prepended, learned position embeddings added, and `depth`
    pre-norm blocks of `heads`-head self-attention and an MLP (2 × width) run over the 65 tokens; the head reads the
    class token. Layer names are torchvision's: Grad-CAM's default layer is the last block's input norm,
    `encoder.layers.encoder_layer_{depth-1}.ln_1` (8×8 tokens after the class token).
    """
    from torchvision.models.vision_transformer import ConvStemConfig, VisionTransformer

    stem = [ConvStemConfig(16, 3, 2), ConvStemConfig(32, 3, 2), ConvStemConfig(64, 3, 1), ConvStemConfig(64, 3, 2)]
    return VisionTransformer(image_size=64, patch_size=8, num_layers=depth, num_heads=heads, hidden_dim=width,
                             mlp_dim=2 * width, num_classes=n_classes, conv_stem_configs=stem)
