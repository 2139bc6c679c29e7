"""2.5D deep learning (Appendices 4 and 7): training, DL_E, DL_F, Grad-CAM of the CBAM-ResNet
(``dl_network``); its figures are in ``dl_figures``.

- ``augment``: random horizontal and vertical flips and rotations in 45-degree steps, on
  whatever device the batch is on (one ``grid_sample`` call per batch).
- ``train``: the training cohort only, with an inner stratified validation split of it
  for early stopping after a warm-up of ``min_epochs`` (as Keras' ``start_from_epoch``), or
  a fixed ``stop_epoch`` of the same schedule (the refit, at the fold nets' median kept epoch);
  class imbalance by the positive-class weight of the loss; AdamW; seeded; in bf16 autocast
  with channels_last where the device computes bf16 natively, float32 elsewhere
  (``dl_device``).
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

from .device import Compute
from .network import CBAMResNet
from .scale import dl_e_score, logit, scale_of  # noqa: F401 (DL_E's scale, without torch; here too)

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
TIMING_FIELDS = ("fit_seconds", "eval_seconds", "epoch_seconds", "seconds")


@dataclass(frozen=True)
class TrainParams:
    depth: int = 18
    base_width: int = 64
    head_hidden: int = 64
    dropout: float = 0.5
    epochs: int = 40
    min_epochs: int = 10  # warm-up: no early stop and no weights kept before it
    patience: int = 6
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    inner_val_fraction: float = 0.2
    augment: bool = True
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 (dl_device)
    # 0: early stopping. N: train epochs 1..N of the `epochs`-long schedule and keep epoch N
    # (the refit stops where the fold nets did: its DL_E on their out-of-fold scale).
    stop_epoch: int = 0


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


class EarlyStopping:
    """Keeps the weights of the epoch with the lowest monitored loss, from epoch
    ``min_epochs`` on, and says when ``patience`` epochs have passed without a new lowest."""

    def __init__(self, min_epochs: int, patience: int):
        self.min_epochs, self.patience = min_epochs, patience
        self.best, self.best_epoch, self.best_state, self.stale = math.inf, 0, None, 0

    def update(self, epoch: int, monitor: float, model: nn.Module) -> bool:
        """True when training should stop after this epoch."""
        if epoch < self.min_epochs:
            return False  # the validation loss first rises as predictions leave 0.5
        if monitor < self.best - 1e-6:
            self.best, self.best_epoch, self.stale = monitor, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return False
        self.stale += 1
        return self.stale >= self.patience


def _fit_epoch(model, opt, loss_fn, x_all, y_all, rows, params: TrainParams, compute: Compute,
               gen: torch.Generator) -> tuple[float, int]:
    """One pass over the fitting images in a seeded order: (mean loss, images seen)."""
    model.train()
    order = torch.randperm(len(rows), generator=gen).to(rows.device)
    losses, sizes = [], []
    for start in range(0, len(order), params.batch_size):
        batch = rows[order[start:start + params.batch_size]]
        if len(batch) < 2:  # BatchNorm needs two images
            continue
        x, y = x_all[batch], y_all[batch]
        if params.augment:
            x = augment(x, gen).contiguous(memory_format=compute.memory_format)
        with compute.autocast():
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())  # read after the epoch: no wait for the GPU per batch
        sizes.append(len(batch))
    compute.synchronize()
    seen = sum(sizes)
    return sum(float(v) * n for v, n in zip(losses, sizes)) / max(seen, 1), seen


def train(images: np.ndarray, labels: np.ndarray, params: TrainParams = TrainParams(), log=print) -> TrainResult:
    """Train on the training cohort's (N, 3, H, W) images and 0/1 DM labels.

    Nothing from the validation cohorts enters: the caller passes training patients only.
    Each history row times the epoch's training pass, its early-stopping evaluation and
    the whole epoch (TIMING_FIELDS).
    """
    t0 = time.perf_counter()
    compute = Compute.of(params.device, params.precision)
    device = compute.device
    seed_everything(params.seed)
    fit_idx, val_idx = inner_split(labels, params.inner_val_fraction, params.seed)
    if labels[fit_idx].sum() == 0 or labels[fit_idx].sum() == len(fit_idx):
        raise ValueError("the training part holds one class only; DM and non-DM patients are both needed")
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
    x_all = x_all.contiguous(memory_format=compute.memory_format)
    y_all = torch.from_numpy(labels.astype(np.float32)).to(device)
    x_val, y_val = x_all[torch.as_tensor(val_idx).to(device)], torch.from_numpy(labels[val_idx].astype(np.float32))

    model = build_model(params).to(device, memory_format=compute.memory_format)
    n_pos = float(labels[fit_idx].sum())
    pos_weight = torch.tensor((len(fit_idx) - n_pos) / n_pos, device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=params.epochs)
    gen = torch.Generator().manual_seed(params.seed)
    if not 0 <= params.stop_epoch <= params.epochs:
        raise ValueError(f"stop_epoch {params.stop_epoch} is outside the schedule's {params.epochs} epochs")
    last = params.stop_epoch or params.epochs
    stopping = (EarlyStopping(last, patience=last) if params.stop_epoch  # keeps epoch `last`, never stops early
                else EarlyStopping(min(params.min_epochs, params.epochs), params.patience))

    history = []
    for epoch in range(1, last + 1):
        t_epoch = time.perf_counter()
        train_loss, seen = _fit_epoch(model, opt, loss_fn, x_all, y_all, torch.as_tensor(fit_idx).to(device),
                                      params, compute, gen)
        t_eval = time.perf_counter()
        sched.step()
        row = {"epoch": epoch, "train_loss": train_loss, "lr": opt.param_groups[0]["lr"], "images": seen,
               "fit_seconds": round(t_eval - t_epoch, 4)}
        if len(val_idx):
            logits = _logits(model, x_val, params.batch_size, compute)
            row["val_loss"] = float(F.binary_cross_entropy_with_logits(logits, y_val, pos_weight=pos_weight.cpu()))
            row["val_auc"] = _auc(y_val.numpy(), torch.sigmoid(logits).numpy())
        row["eval_seconds"] = round(time.perf_counter() - t_eval, 4)
        history.append(row)
        log(f"epoch {epoch:3d}  train loss {row['train_loss']:.4f}"
            + (f"  val loss {row['val_loss']:.4f}  val AUC {row['val_auc']:.3f}" if "val_loss" in row else ""))
        stop = stopping.update(epoch, row.get("val_loss", row["train_loss"]), model)
        row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 4)
        if stop:
            log(f"early stop: no improvement for {params.patience} epochs")
            break
    if stopping.best_state is None:
        raise ValueError("training produced no finite loss; lower the learning rate")
    model.load_state_dict(stopping.best_state)
    info = {"device": str(device), "precision": compute.precision, "best_epoch": stopping.best_epoch,
            "epochs_run": len(history), "seconds": round(time.perf_counter() - t0, 2), "n_fit": int(len(fit_idx)),
            "n_inner_val": int(len(val_idx)), "fit_events": int(labels[fit_idx].sum()), "pos_weight": float(pos_weight),
            "params": asdict(params), "torch": torch.__version__}
    return TrainResult(model.to("cpu", memory_format=torch.contiguous_format), history, info)


@torch.no_grad()
def _logits(model, x, batch_size, compute: Compute) -> torch.Tensor:
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        with compute.autocast():
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


def logit_scale(model: CBAMResNet, images: np.ndarray) -> dict:
    """The mean and SD of a net's DL_E log-odds over the patients it was trained on (``images``).

    Each net's logits spread by how far it trained: fold nets that stopped at epochs 10-14 of
    one demo run spread 0.3 to 1.6. DL_E enters the survival models as the logit standardised
    by these two numbers of its own net (:func:`dl_e_score`), as each Rad-score LASSO's score
    is put on unit SD over the patients it was fitted on; the out-of-fold scores of five nets
    and the refit's scores of new patients then share one scale. Training images only: a
    fitted constant of the net, frozen with it."""
    return scale_of(predict(model, images)[0])


def save_weights(model: CBAMResNet, path) -> None:
    """The state dict, byte-identical for identical weights (torch.save names the archive
    after the file; an in-memory buffer keeps the temporary name out of it)."""
    import io

    from ..io import atomic_path

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
