"""Figures of the deep-learning stage: the loss curves (Figure S3) and Grad-CAM maps (Figure S5)."""

from __future__ import annotations

import numpy as np


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
