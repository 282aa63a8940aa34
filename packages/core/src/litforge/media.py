"""The one path through which everything visual leaves a run.

``emit_images`` (a captioned grid of uint8 images) and ``emit_figure`` (a matplotlib figure) send
to every attached logger (W&B: ``log_image`` with captions; TensorBoard: ``add_images`` or
``add_figure`` plus the captions as text) and always write ``<run dir>/media/<key>/<step>.png``.
Only rank 0 emits. Nothing else in litforge knows about a particular logger.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor


def media_path(trainer: pl.Trainer, key: str, step: int | None = None) -> Path:
    step = trainer.global_step if step is None else step
    return Path(trainer.default_root_dir) / "media" / key / f"{step}.png"


def to_uint8(images: Tensor) -> Tensor:
    """N x C x H x W images to uint8: uint8 passes; floats are min-max scaled per image."""
    if images.dtype == torch.uint8:
        return images
    x = images.detach().float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo).clamp_min(1e-8) * 255).round().to(torch.uint8)


def grid_figure(images: Tensor, captions: list[str], ncols: int = 8) -> Figure:
    """A figure with one captioned panel per image (uint8, N x C x H x W)."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.2 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i].permute(1, 2, 0).cpu().numpy()
            ax.imshow(
                img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", interpolation="nearest"
            )
            ax.set_title(captions[i], fontsize=7)
    fig.tight_layout()
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]


def emit_images(
    trainer: pl.Trainer, key: str, images: Tensor, captions: list[str], step: int | None = None
) -> Path | None:
    """Sends a captioned image grid to every logger and to a PNG file. Returns the PNG path."""
    if trainer.global_rank != 0:
        return None
    if len(images) != len(captions):
        raise ValueError(f"{key}: {len(images)} images but {len(captions)} captions")
    images = to_uint8(images).cpu()
    step = trainer.global_step if step is None else step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            arrays = [img.permute(1, 2, 0).numpy() for img in images]
            logger.log_image(key=key, images=arrays, caption=captions, step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_images(key, images, global_step=step, dataformats="NCHW")
            logger.experiment.add_text(f"{key}/captions", "  \n".join(captions), global_step=step)
    fig = grid_figure(images, captions)
    return _save(trainer, key, step, fig)


def emit_figure(trainer: pl.Trainer, key: str, fig: Figure, step: int | None = None) -> Path | None:
    """Sends a matplotlib figure to every logger and to a PNG file, then closes it."""
    if trainer.global_rank != 0:
        plt.close(fig)
        return None
    step = trainer.global_step if step is None else step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[figure_to_array(fig)], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, fig, global_step=step, close=False)
    return _save(trainer, key, step, fig)


def _save(trainer: pl.Trainer, key: str, step: int, fig: Figure) -> Path:
    path = media_path(trainer, key, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    plt.close(fig)
    return path
