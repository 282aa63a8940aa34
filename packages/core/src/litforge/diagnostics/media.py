"""The one path through which everything visual leaves a run.

``emit_images`` (a captioned grid of images, N x C x H x W with C in 1, 3 or 4),
``emit_table`` (rows of named values) and ``emit_figure`` (a matplotlib figure) send to every
attached logger (W&B: ``log_image`` with captions, ``log_table``; TensorBoard: ``add_images`` or
``add_figure`` plus the captions as text, tables as markdown text) and always write
``<run dir>/media/<key>/<step>.png`` (tables also as ``<step>.csv``). ``emit_view`` sends what a
data module's ``show`` returns. Only rank 0 emits. Nothing else in litforge knows about a
particular logger.
"""

from __future__ import annotations

import csv
import dataclasses
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


@dataclasses.dataclass
class Images:
    """Pictures with one caption each: uint8 (or float, min-max scaled) N x C x H x W, C in 1, 3, 4."""

    pixels: Tensor
    captions: list[str]


@dataclasses.dataclass
class Table:
    """Rows of named values: ``columns[name][row]``, every column as long as the others."""

    columns: dict[str, list[str | int | float]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))


View = Images | Table


def media_path(trainer: pl.Trainer, key: str, step: int | None = None) -> Path:
    step = trainer.global_step if step is None else step
    return Path(trainer.default_root_dir) / "media" / key / f"{step}.png"


def to_uint8(images: Tensor) -> Tensor:
    """N x C x H x W images to uint8: uint8 passes; floats are min-max scaled per image."""
    if images.dim() != 4 or images.shape[1] not in (1, 3, 4):
        raise ValueError(
            f"images must be N x C x H x W with C in 1, 3 or 4, got shape {tuple(images.shape)}"
        )
    if images.dtype == torch.uint8:
        return images
    x = images.detach().float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo).clamp_min(1e-8) * 255).round().to(torch.uint8)


def colorize(mask: Tensor, num_classes: int) -> Tensor:
    """Class indices (N x H x W) -> uint8 colours (N x 3 x H x W); class 0 is black."""
    cmap = plt.get_cmap("tab10" if num_classes <= 11 else "tab20")
    palette = [(0.0, 0.0, 0.0)] + [cmap(i % cmap.N)[:3] for i in range(max(1, num_classes - 1))]
    colours = (torch.tensor(palette) * 255).round().to(torch.uint8)
    return colours.to(mask.device)[mask.long().clamp(0, len(palette) - 1)].permute(0, 3, 1, 2)


def overlay(pixels: Tensor, mask: Tensor, num_classes: int, alpha: float = 0.55) -> Tensor:
    """A mask's colours over uint8 images (N x C x H x W, C = 1 or 3) where the class is not 0."""
    rgb = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels[:, :3]
    colours = colorize(mask, num_classes).float()
    blended = rgb.float() * (1 - alpha) + colours * alpha
    return torch.where((mask > 0)[:, None], blended, rgb.float()).round().to(torch.uint8)


def side_by_side(*panels: Tensor, gap: int = 1) -> Tensor:
    """uint8 N x 3 x H x W panels joined left to right with a white gap: one picture each."""
    white = torch.full((*panels[0].shape[:3], gap), 255, dtype=torch.uint8, device=panels[0].device)
    parts: list[Tensor] = []
    for panel in panels:
        parts += [panel, white]
    return torch.cat(parts[:-1], dim=-1)


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
            ax.imshow(_hw(img), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(captions[i], fontsize=7)
    fig.tight_layout()
    return fig


def _hw(img: np.ndarray) -> np.ndarray:
    """H x W x 1 -> H x W (what matplotlib and W&B take for one channel)."""
    return img[..., 0] if img.shape[-1] == 1 else img


def table_figure(table: Table, max_chars: int = 40) -> Figure:
    """The table drawn as a matplotlib table, long cells cut to ``max_chars``."""
    names = list(table.columns)
    rows = [[_cell(table.columns[name][i], max_chars) for name in names] for i in range(len(table))]
    width = min(
        24.0, 1.0 + sum(max(len(n), *(len(r[j]) for r in rows)) for j, n in enumerate(names)) * 0.09
    )
    fig, ax = plt.subplots(figsize=(max(4.0, width), 0.6 + 0.3 * (len(rows) + 1)))
    ax.axis("off")
    if rows:
        drawn = ax.table(cellText=rows, colLabels=names, loc="center", cellLoc="left")
        drawn.auto_set_font_size(False)
        drawn.set_fontsize(7)
        drawn.auto_set_column_width(list(range(len(names))))
    fig.tight_layout()
    return fig


def _cell(value: object, max_chars: int) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


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
            arrays = [_hw(img.permute(1, 2, 0).numpy()) for img in images]
            logger.log_image(key=key, images=arrays, caption=captions, step=step)
        elif isinstance(logger, TensorBoardLogger):
            rgb = images[:, :3]  # TensorBoard's add_images takes 1 or 3 channels, not RGBA
            logger.experiment.add_images(key, rgb, global_step=step, dataformats="NCHW")
            logger.experiment.add_text(f"{key}/captions", "  \n".join(captions), global_step=step)
    fig = grid_figure(images, captions)
    return _save(trainer, key, step, fig)


def emit_table(trainer: pl.Trainer, key: str, table: Table, step: int | None = None) -> Path | None:
    """Sends a table to every logger (W&B Table, TensorBoard markdown text) and writes it to
    ``<step>.png`` and ``<step>.csv``. Returns the PNG path."""
    if trainer.global_rank != 0:
        return None
    lengths = {name: len(values) for name, values in table.columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{key}: the table's columns differ in length: {lengths}")
    step = trainer.global_step if step is None else step
    names = list(table.columns)
    rows = [[table.columns[n][i] for n in names] for i in range(len(table))]
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key=key, columns=names, data=rows, step=step)
        elif isinstance(logger, TensorBoardLogger):
            lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
            lines += ["| " + " | ".join(_cell(v, 200) for v in row) + " |" for row in rows]
            logger.experiment.add_text(key, "\n".join(lines), global_step=step)
    path = media_path(trainer, key, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(rows)
    return _save(trainer, key, step, table_figure(table))


def emit_view(trainer: pl.Trainer, key: str, view: View, step: int | None = None) -> Path | None:
    """Sends what a data module's ``show`` returned: images or a table."""
    if isinstance(view, Images):
        return emit_images(trainer, key, view.pixels, view.captions, step)
    if isinstance(view, Table):
        return emit_table(trainer, key, view, step)
    raise TypeError(
        f"{key}: show() must return media.Images or media.Table, got {type(view).__name__}"
    )


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
