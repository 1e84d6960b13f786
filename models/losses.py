"""Losses of the SPADE family: hinge GAN, discriminator feature matching, KL, a perceptual term, and the
segmentation discriminator's N+1 loss with LabelMix (OASIS, DP-GAN).

The perceptual term is VGG19 (pix2pixHD layer weights) when a local torchvision-format VGG19 state dict is given
(`--vgg-weights PATH`); no ImageNet weights can be downloaded here, so otherwise it is our substitute:
L1 between 4×- and 8×-average-pooled images (colour and layout), which together with
discriminator feature matching stands in for VGG. `PerceptualLoss.kind` names the one in use so the trainer can
record it in checkpoints and manifests.

Discriminator outputs are what `MultiscaleDiscriminator` returns: per scale a list of feature maps whose last
entry is the patch logits.

The hinge terms cast the logits, and `kl_loss` casts μ and log σ², to fp32: under bfloat16 autocast
(`--precision=bf16`) convolutions and linear layers hand back bf16, and these sums and the KL's near-cancellation
would keep only ~3 significant digits. `F.l1_loss` is on autocast's fp32 list, so the L1 terms need no cast.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

DOutputs = list[list[torch.Tensor]]

# ----------------------------------------------------------------------------
# Adversarial terms (hinge, averaged over scales as in SPADE).


def hinge_d_loss(real: DOutputs, fake: DOutputs) -> torch.Tensor:
    """D: mean(relu(1 − D(real))) + mean(relu(1 + D(fake))), averaged over scales."""
    terms = [
        F.relu(1 - r[-1].float()).mean() + F.relu(1 + f[-1].float()).mean()
        for r, f in zip(real, fake, strict=True)
    ]
    return torch.stack(terms).mean()


def hinge_g_loss(fake: DOutputs) -> torch.Tensor:
    """G: −mean(D(fake)), averaged over scales."""
    return torch.stack([-f[-1].float().mean() for f in fake]).mean()


def feature_matching_loss(fake: DOutputs, real: DOutputs, weight: float = 10.0) -> torch.Tensor:
    """L1 between D's intermediate features of fake and (detached) real, summed over layers, averaged over
    scales, times `weight` (SPADE/pix2pixHD λ=10). The logits are not matched."""
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for f_feats, r_feats in zip(fake, real, strict=True):
        for f, r in zip(f_feats[:-1], r_feats[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total * weight / len(fake)


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor, weight: float = 0.05) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) summed over latent dims, averaged over the batch, times `weight` (paper 0.05).

    SPADE sums over the batch too; the batch mean keeps the weight independent of batch size [ours].
    """
    mu, logvar = mu.float(), logvar.float()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)  # [B]
    return kl.mean() * weight


# ----------------------------------------------------------------------------
# OASIS's (N+1)-class segmentation-discriminator loss and LabelMix (`models/nets/seg_discriminator.py`; the
# pixel-level supervision of DP-GAN's discriminator too).


def class_balanced_weights(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-pixel weights [B,H,W] for label [B,H,W]: the inverse frequency of each pixel's class in the batch,
    scaled so a batch whose present classes are equally frequent weighs 1 everywhere (OASIS).

    Without it a 50-pixel house among 60,000 pixels of sky and grass would hardly count.
    """
    counts = torch.bincount(label.flatten(), minlength=num_classes).to(torch.float32)  # [N]
    present = (counts > 0).sum()
    per_class = label.numel() / (present * counts.clamp(min=1))  # [N]
    return per_class[label]  # [B,H,W]


def seg_ce_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean cross-entropy of logits [B,N+1,H,W] against target ids [B,H,W] with weights [B,H,W]."""
    ce = F.cross_entropy(logits.float(), target, reduction="none")  # [B,H,W]
    return (ce * weights).mean()


def seg_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Segmentation D: real pixels as their class, fake pixels as class N (the last).

    OASIS class-balances only the real term; here the fake term carries the same weights (the label map the fakes
    were drawn for), so S also attends to fake houses and rocks as much as to fake sky. The served stages 4 and 5
    were trained with this form.
    """
    fake_class = real_logits.shape[1] - 1
    weights = class_balanced_weights(label, fake_class)
    return seg_ce_loss(real_logits, label, weights) + seg_ce_loss(
        fake_logits, torch.full_like(label, fake_class), weights
    )


def seg_g_loss(fake_logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """G: fake pixels should be segmented as the class painted there, class-balanced (OASIS)."""
    return seg_ce_loss(fake_logits, label, class_balanced_weights(label, fake_logits.shape[1] - 1))


def labelmix(
    label: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixed image [B,3,H,W], mask [B,1,H,W]): every class goes wholly to the real or the fake side, by a coin
    per class shared by the batch (OASIS); mixed = mask·real + (1−mask)·fake, label [B,H,W].

    The mix keeps the label map's boundaries, so D can only tell the halves apart by the content of each
    region, not by a seam: the regulariser pushes D to judge realism where G paints, not along edges."""
    coin = torch.randint(0, 2, (num_classes,), device=label.device)  # [N], one draw per class
    mask = coin[label][:, None].to(real.dtype)  # [B,1,H,W]
    return mask * real + (1 - mask) * fake, mask


def labelmix_loss(
    mixed_logits: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between D's logits on the mixed image and the same mix of its logits on real and fake,
    each [B,N+1,H,W]; mask [B,1,H,W]. Zero for a D that judges each pixel on its own."""
    target = mask * real_logits.float() + (1 - mask) * fake_logits.float()
    return F.mse_loss(mixed_logits.float(), target)


def oasis_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Real pixels as their class, class-balanced; fake pixels as class N, unweighted (OASIS eq. for L_D; DP-GAN
    eq. 3, its pixel-level term).

    Unlike `seg_d_loss` (our SPADE -seg presets), the fake term is not class-balanced."""
    fake_class = real_logits.shape[1] - 1
    weights = class_balanced_weights(label, fake_class)  # [B,H,W]
    fake_target = torch.full_like(label, fake_class)
    return seg_ce_loss(real_logits, label, weights) + F.cross_entropy(fake_logits.float(), fake_target)


def downsampled_l1_loss(
    fake: torch.Tensor, real: torch.Tensor, factors: tuple[int, ...] = (4, 8)
) -> torch.Tensor:
    """Mean over `factors` of L1 between average-pooled images: colour and layout only, no texture."""
    terms = [F.l1_loss(F.avg_pool2d(fake, k), F.avg_pool2d(real, k)) for k in factors]
    return torch.stack(terms).mean()


# ----------------------------------------------------------------------------
# VGG19 (torchvision layout, so a standard state dict loads) and the perceptual loss.

_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
_VGG19_TAPS = (1, 6, 11, 20, 29)  # indices in `features` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_VGG19_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD convention
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG19's convolutional trunk up to relu5_1, with torchvision's module indices (`features.N.weight`)."""

    mean: torch.Tensor  # [1,3,1,1] ImageNet channel means
    std: torch.Tensor  # [1,3,1,1] ImageNet channel standard deviations

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        fin = 3
        for item in _VGG19_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(fin, int(item), 3, padding=1), nn.ReLU()]
                fin = int(item)
        self.features = nn.Sequential(*layers[: _VGG19_TAPS[-1] + 1])
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def load_torchvision(self, path: str | Path) -> None:
        """Load `features.*` from a torchvision VGG19 state dict file (classifier weights are ignored)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (torchvision vgg19), got {type(state).__name__}")
        own = self.features.state_dict()
        missing = [f"features.{k}" for k in own if state.get(f"features.{k}") is None]
        if missing:
            raise ValueError(f"{path}: not a torchvision VGG19 state dict, missing {', '.join(missing[:4])}…")
        wanted = {k: state[f"features.{k}"] for k in own}
        for key, tensor in wanted.items():
            if tensor.shape != own[key].shape:
                raise ValueError(
                    f"{path}: features.{key} has shape {tuple(tensor.shape)}, VGG19 needs {own[key].shape}"
                )
        self.features.load_state_dict(wanted)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image [B,3,H,W] in [-1,1] -> activations relu1_1 … relu5_1."""
        x = ((image + 1) / 2 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG19_TAPS:
                taps.append(x)
        return taps


class PerceptualLoss(nn.Module):
    """VGG19 perceptual L1 when `vgg_weights` is given, else the L1 on 4×/8× down-sampled images.

    The result is already multiplied by the term's weight (`vgg_weight`, paper 10, or `substitute_weight`).
    """

    def __init__(
        self,
        vgg_weights: str | Path | None = None,  # torchvision VGG19 state dict file; None -> substitute
        vgg_weight: float = 10.0,  # λ of the VGG term (SPADE 10)
        substitute_weight: float = 1.0,  # λ of the down-sampled L1 substitute [ours]
    ) -> None:
        super().__init__()
        self.vgg: VGG19Features | None = None
        if vgg_weights is not None:
            path = Path(vgg_weights)
            if not path.is_file():
                raise FileNotFoundError(f"--vgg-weights {path} does not exist")
            self.vgg = VGG19Features()
            self.vgg.load_torchvision(path)
            self.vgg.requires_grad_(False).eval()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            self.kind = f"vgg19:{path.name}:sha256={digest}"
            self.weight = vgg_weight
        else:
            self.kind = "substitute:l1-avgpool-4x-8x+d-feature-matching"
            self.weight = substitute_weight

    def train(self, mode: bool = True) -> PerceptualLoss:
        """The VGG trunk stays frozen in eval mode whatever the trainer does."""
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()
        return self

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """fake, real [B,3,H,W] in [-1,1] -> weighted scalar loss; gradients flow to `fake` only."""
        if self.vgg is None:
            return downsampled_l1_loss(fake, real.detach()) * self.weight
        with torch.no_grad():
            real_taps = self.vgg(real)
        fake_taps = self.vgg(fake)
        terms = [
            w * F.l1_loss(f, r) for w, f, r in zip(_VGG19_LAYER_WEIGHTS, fake_taps, real_taps, strict=True)
        ]
        return torch.stack(terms).sum() * self.weight
