"""2.5D deep learning (Appendices 4 and 7): CBAM-ResNet with Mish, training, DL_E, DL_F, Grad-CAM.

- ``CBAMResNet``: a ResNet (18, 34 or 50 layers) with a CBAM block (channel, then spatial
  attention; Woo et al., ECCV 2018) in every residual block, Mish activations, and a
  classifier head with dropout. Randomly initialised: nothing is downloaded.
- ``augment``: random horizontal and vertical flips and rotations in 45-degree steps, on
  whatever device the batch is on (one ``grid_sample`` call per batch).
- ``train``: the training cohort only, with an inner stratified validation split of it
  for early stopping after a warm-up of ``min_epochs`` (as Keras' ``start_from_epoch``);
  class imbalance by the positive-class weight of the loss; AdamW; seeded; bf16 autocast
  and channels_last on CUDA, plain float32 on CPU.
- ``predict``: DL_E (the DM probability) and DL_F (the penultimate layer) per patient.
- ``gradcam``: captum's LayerGradCam on the last convolutional stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

LAYERS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


# --------------------------------------------------------------------------- model


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


def _conv_bn(cin, cout, k, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


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


# --------------------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random h/v flips and rotation by k x 45 degrees (k = 0..7), per image, on x's device.

    The random draws come from ``generator`` (on the CPU, so runs are reproducible on any
    device); the warp is one affine ``grid_sample`` (bilinear, zeros outside) per batch.
    """
    n = x.shape[0]
    flips = torch.randint(0, 2, (n, 2), generator=generator).float() * -2 + 1  # +1 keep, -1 flip
    angles = torch.randint(0, 8, (n,), generator=generator).float() * (math.pi / 4)
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flips[:, 0], -sin * flips[:, 1]
    theta[:, 1, 0], theta[:, 1, 1] = sin * flips[:, 0], cos * flips[:, 1]
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------- training


# What train() measures of its own speed (per epoch, in all): returned for benchmarks and
# logs, never written into an output.
TIMING_FIELDS = ("fit_seconds", "seconds")

@dataclass(frozen=True)
class TrainParams:
    depth: int = 18
    base_width: int = 64
    head_hidden: int = 64
    dropout: float = 0.5
    epochs: int = 40
    min_epochs: int = 15  # warm-up: no early stop and no weights kept before it
    patience: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    inner_val_fraction: float = 0.2
    augment: bool = True
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def inner_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the training cohort's indices into fit / early-stopping parts."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if fraction <= 0:
        return idx, idx[:0]
    stratify = labels if min(np.bincount(labels.astype(int), minlength=2)) >= 2 else None
    n_val = math.ceil(fraction * len(idx))  # what scikit-learn takes from the fraction
    if stratify is not None:  # a small fold's training part: one patient of each class at least
        n_val = max(n_val, 2)
    fit, val = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(val)


def build_model(params: TrainParams) -> CBAMResNet:
    return CBAMResNet(params.depth, 3, params.base_width, params.head_hidden, params.dropout)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else float("nan")


@dataclass
class TrainResult:
    model: CBAMResNet
    history: list[dict]
    info: dict


def train(images: np.ndarray, labels: np.ndarray, params: TrainParams = TrainParams(), log=print) -> TrainResult:
    """Train on the training cohort's (N, 3, H, W) images and 0/1 DM labels.

    Nothing from the validation cohorts enters: the caller passes training patients only.
    """
    device = pick_device(params.device)
    cuda = device.type == "cuda"
    seed_everything(params.seed)
    fit_idx, val_idx = inner_split(labels, params.inner_val_fraction, params.seed)
    if labels[fit_idx].sum() == 0 or labels[fit_idx].sum() == len(fit_idx):
        raise ValueError("the training part holds one class only; DM and non-DM patients are both needed")
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
    y_all = torch.from_numpy(labels.astype(np.float32)).to(device)
    memory = torch.channels_last if cuda else torch.contiguous_format
    x_all = x_all.contiguous(memory_format=memory)

    model = build_model(params).to(device, memory_format=memory)
    n_pos = float(labels[fit_idx].sum())
    pos_weight = torch.tensor((len(fit_idx) - n_pos) / n_pos, device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=params.epochs)
    gen = torch.Generator().manual_seed(params.seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    history, best, best_state, stale, best_epoch = [], math.inf, None, 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, params.epochs + 1):
        model.train()
        t_epoch = time.perf_counter()
        order = torch.randperm(len(fit_idx), generator=gen)
        total, seen = 0.0, 0
        for start in range(0, len(order), params.batch_size):
            batch = torch.as_tensor(fit_idx)[order[start:start + params.batch_size]].to(device)
            if len(batch) < 2:  # BatchNorm needs two images
                continue
            x, y = x_all[batch], y_all[batch]
            if params.augment:
                x = augment(x, gen).contiguous(memory_format=memory)
            with autocast:
                loss = loss_fn(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        if cuda:
            torch.cuda.synchronize()
        fit_seconds = time.perf_counter() - t_epoch
        sched.step()
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "lr": opt.param_groups[0]["lr"],
               "images": seen, "fit_seconds": round(fit_seconds, 4)}
        if len(val_idx):
            logits = _logits(model, x_all[torch.as_tensor(val_idx).to(device)], params.batch_size, autocast)
            yv = y_all[torch.as_tensor(val_idx).to(device)].cpu()
            row["val_loss"] = float(F.binary_cross_entropy_with_logits(logits, yv, pos_weight=pos_weight.cpu()))
            row["val_auc"] = _auc(yv.numpy(), torch.sigmoid(logits).numpy())
        history.append(row)
        log(f"epoch {epoch:3d}  train loss {row['train_loss']:.4f}"
            + (f"  val loss {row['val_loss']:.4f}  val AUC {row['val_auc']:.3f}" if "val_loss" in row else ""))
        monitor = row.get("val_loss", row["train_loss"])
        if epoch < min(params.min_epochs, params.epochs):
            continue  # the validation loss first rises as predictions leave 0.5
        if monitor < best - 1e-6:
            best, stale = monitor, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best_epoch = epoch
        else:
            stale += 1
            if stale >= params.patience:
                log(f"early stop: no improvement for {params.patience} epochs")
                break
    if best_state is None:
        raise ValueError("training produced no finite loss; lower the learning rate")
    model.load_state_dict(best_state)
    info = {"device": str(device), "best_epoch": best_epoch, "epochs_run": len(history),
            "seconds": round(time.perf_counter() - t0, 2), "n_fit": int(len(fit_idx)), "n_inner_val": int(len(val_idx)),
            "fit_events": int(labels[fit_idx].sum()), "pos_weight": float(pos_weight), "params": asdict(params),
            "torch": torch.__version__}
    return TrainResult(model.cpu(), history, info)


@torch.no_grad()
def _logits(model, x, batch_size, autocast) -> torch.Tensor:
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        with autocast:
            out.append(model(x[start:start + batch_size]).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def predict(model: CBAMResNet, images: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """DL_E (DM probability) and DL_F (penultimate-layer features) for (N, 3, H, W) images, on CPU."""
    model.eval()
    probs, feats = [], []
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    for start in range(0, len(x_all), batch_size):
        f = model.features(x_all[start:start + batch_size])
        feats.append(f.numpy())
        probs.append(torch.sigmoid(model.head(f).squeeze(1)).numpy())
    return np.concatenate(probs), np.concatenate(feats)


def save_weights(model: CBAMResNet, path) -> None:
    """The state dict, byte-identical for identical weights (torch.save names the archive
    after the file; an in-memory buffer keeps the temporary name out of it)."""
    import io

    from .io import atomic_path

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_model(path, params: TrainParams) -> CBAMResNet:
    """A model of ``params``' architecture with the saved state dict (weights_only: no pickle code)."""
    model = build_model(params)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


# --------------------------------------------------------------------------- Grad-CAM


def gradcam(model: CBAMResNet, images: np.ndarray) -> np.ndarray:
    """Grad-CAM (captum's LayerGradCam on the last convolutional stage) upsampled to the input
    size, ReLU'd and scaled to [0, 1] per image: (N, H, W)."""
    from captum.attr import LayerAttribution, LayerGradCam

    model.eval()
    cam = LayerGradCam(model, model.layer4)
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img[None], dtype=np.float32))
        a = cam.attribute(x, relu_attributions=True)
        a = LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear")[0, 0]
        a = a.detach().numpy()
        out.append(a / a.max() if a.max() > 0 else a)
    return np.stack(out) if out else np.zeros((0, *images.shape[-2:]))


# --------------------------------------------------------------------------- figures


def loss_figure(history: list[dict], best_epoch: int | None = None):
    """Figure S3: training and inner-validation loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def column(name):  # numbers, also when the history was read back from loss.tsv as text
        return np.array([h[name] for h in history], dtype=float)

    epochs = column("epoch")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, column("train_loss"), label="training loss", color="#1f77b4")
    if history and "val_loss" in history[0]:
        ax.plot(epochs, column("val_loss"), label="validation loss (inner split)", color="#d62728")
    if best_epoch:
        ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"kept: epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted binary cross-entropy")
    ax.set_title("Deep-learning model: loss curves")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def gradcam_figure(images: np.ndarray, maps: np.ndarray, labels: list[str]):
    """Figure S5: the input's slice n with its Grad-CAM map overlaid, one column per patient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(images[j][1], cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(labels[j], fontsize=8)
        axes[1, j].imshow(images[j][1], cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(maps[j], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for ax in axes[:, j]:
            ax.axis("off")
    axes[0, 0].text(-0.08, 0.5, "input (slice n)", transform=axes[0, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    axes[1, 0].text(-0.08, 0.5, "Grad-CAM", transform=axes[1, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    fig.tight_layout()
    return fig
