"""The one path through which everything visual leaves a run.

``emit_images`` (a captioned grid of images, N x C x H x W with C in 1, 3 or 4; line plots and
curves become such images through ``line_plots``),
``emit_table`` (rows of named values) and ``emit_figure`` (a matplotlib figure) send to every
attached logger (W&B: ``log_image`` with captions, ``log_table``; TensorBoard: ``add_images`` or
``add_figure`` plus the captions as text, tables as markdown text) and always write
``<run dir>/media/<key>/<step>.png`` (tables also as ``<step>.csv``; with ``facts``, what the
picture shows as data in ``<step>.json``). ``emit_view`` sends what a data module's ``show``
returns. Only rank 0 emits. Nothing else in litforge knows about a particular logger.

The step in a file's name is the training step of the model the picture shows (``Scored``): for
a test of the best checkpoint, that checkpoint's step, not the last step trained. The run folder
keeps the files of the last ``keep`` steps of each key; the loggers keep every one.

Numbers meant for people go through ``fmt`` (significant digits, never ``-0``) and ``fmt_prob``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.transforms import Bbox
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

DPI = 100  # of every PNG written


@dataclasses.dataclass
class Images:
    """Pictures with one caption each: uint8 (or float, min-max scaled) N x C x H x W, C in 1, 3, 4.
    ``facts``: optional, one dict per picture of what its caption says, as data (plain values):
    written to the JSON file beside the picture (``emit_view``; Extremes adds them to each
    example's record), so that no fact lives only in pixels."""

    pixels: Tensor
    captions: list[str]
    facts: list[dict[str, Any]] | None = None


@dataclasses.dataclass
class Table:
    """Rows of named values: ``columns[name][row]``, every column as long as the others."""

    columns: dict[str, list[str | int | float]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))


View = Images | Table


# ---------------------------------------------------------------------- numbers for people
def fmt(value: Any, digits: int = 3) -> str:
    """A number as a person reads it: ``digits`` significant digits, integers whole, no ``-0``,
    no trailing zeros, exponents without padding (``1.5e-7``); anything else as ``str``."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return "0" if text.lstrip("-") in ("0", "0.0") else text


def fmt_prob(p: float) -> str:
    """A probability: two decimals in [0.01, 0.99]; closer to 0 or 1, enough digits to tell
    it from 0 or 1 (``0.0011``, ``0.9996``, ``>0.9999``)."""
    p = float(p)
    if 0.01 <= p <= 0.99:
        return f"{p:.2f}"
    if p < 0.01:
        return fmt(p, 2)
    for decimals in (3, 4):
        if round(p, decimals) < 1:
            return f"{p:.{decimals}f}"
    return ">0.9999"


# ---------------------------------------------------------------------- which model is shown
@dataclasses.dataclass(frozen=True)
class Scored:
    """The model a picture shows: the stage, the epoch (counted from 0) and training step it
    had reached, and the checkpoint it was read from (None: the weights in memory);
    ``during_fit``: the weights as training left them at that step (never called "final")."""

    stage: str
    epoch: int
    step: int
    checkpoint: str | None = None
    during_fit: bool = False

    def line(self) -> str:
        """One line for the top of a picture."""
        where = f"epoch {self.epoch}, step {self.step}"
        stage = {"val": "validation", "test": "test"}.get(self.stage, self.stage)
        if self.checkpoint:
            return f"{stage} of {self.checkpoint} ({where})"
        if self.stage == "val" or self.during_fit:
            return f"{stage} at {where}"
        if self.step == 0:
            return f"{stage} of the weights as built (no training)"
        return f"{stage} of the final weights ({where})"

    def facts(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "epoch": self.epoch,
            "step": self.step,
            "checkpoint": self.checkpoint
            or ("final" if self.step and not self.during_fit else None),
        }


_POSITIONS: dict[tuple[str, int, int], tuple[int, int]] = {}


def checkpoint_position(path: str | Path) -> tuple[int, int]:
    """(epoch, global step) stored in a Lightning checkpoint (memory-mapped; read once per
    version of the file: a rewritten last.ckpt is read again)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _POSITIONS:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        _POSITIONS[key] = (int(ckpt["epoch"]), int(ckpt["global_step"]))
    return _POSITIONS[key]


def scored(trainer: pl.Trainer, stage: str) -> Scored:
    """What the model of this stage is: during fit, the weights of the current epoch and step;
    in a test or validation that loaded a checkpoint, that checkpoint's epoch and step; else the
    weights in memory (after fit: the final ones)."""
    # TrainerFn is a str enum: compared, not str()-ed ("TrainerFn.FITTING" on Python 3.11,
    # which made every picture of a fit name the epoch before its own)
    fitting = trainer.state.fn == "fit"
    path = trainer.ckpt_path if not fitting else None
    if path and Path(path).is_file():
        epoch, step = checkpoint_position(path)
        try:
            shown = str(Path(path).resolve().relative_to(Path(trainer.default_root_dir).resolve()))
        except ValueError:
            shown = str(path)
        return Scored(stage, epoch, step, shown)
    if fitting:
        return Scored(stage, trainer.current_epoch, trainer.global_step, during_fit=True)
    # after fit, Lightning has counted the last epoch as done
    return Scored(stage, max(trainer.current_epoch - 1, 0), trainer.global_step)


# ---------------------------------------------------------------------- pixels
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


def _hw(img: np.ndarray) -> np.ndarray:
    """H x W x 1 -> H x W (what matplotlib and W&B take for one channel)."""
    return img[..., 0] if img.shape[-1] == 1 else img


# ---------------------------------------------------------------------- line plots as pictures
def line_plots(
    plots: Sequence[Mapping[str, Any]],
    captions: Sequence[str] | None = None,
    facts: Sequence[Mapping[str, Any]] | None = None,
    *,
    size: tuple[int, int] = (320, 200),
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: bool = True,
) -> Images:
    """Line plots or curves as ``Images``, one picture per plot: what a data module's ``show``
    returns for examples best seen as lines (a series' history, forecast and truth; a curve
    per label), drawn by ``emit_view`` as a captioned grid like any images.

    Args:
        plots: one dict per picture, ``{line name: y}`` or ``{line name: (x, y)}``; y and x
            are anything ``numpy.asarray`` takes (tensors too; x may hold datetimes); without
            x, the points sit at 0, 1, 2, ... A NaN leaves a gap.
        captions: one per plot (default: none).
        facts: one dict per plot of what its caption says, as data: written to the JSON
            beside the picture (``Images.facts``).
        size: (width, height) of each picture in pixels.
        styles: matplotlib keywords per line name (``{"forecast": {"linestyle": "--"}}``); a
            line name keeps one colour in every plot (the first line's colour is tab10's first).
        xlabel: the x axis' label, the same in every plot.
        ylabel: the y axis' label, the same in every plot.
        legend: a legend of the line names in each plot.
    """
    n = len(plots)
    captions = list(captions) if captions is not None else [""] * n
    if len(captions) != n or (facts is not None and len(facts) != n):
        got = f"{len(captions)} captions" + (f" and {len(facts)} facts" if facts else "")
        raise ValueError(f"line_plots: {n} plots but {got}; give one per plot")
    if n == 0:
        raise ValueError("line_plots: no plots to draw")
    names = list(dict.fromkeys(name for plot in plots for name in plot))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    width, height = size
    # constrained layout: fitted at drawing time, once the tick labels are known
    layout = ConstrainedLayoutEngine(w_pad=0.03, h_pad=0.03)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout=layout)
    pictures = []
    try:
        for i, plot in enumerate(plots):
            fig.clear()
            ax, dates = fig.add_subplot(), False
            for name, line in plot.items():
                x, y = line if isinstance(line, tuple) else (None, line)
                y = _numbers(y)
                x = np.arange(len(y)) if x is None else np.asarray(_numbers(x, keep_dates=True))
                if x.shape != y.shape or y.ndim != 1:
                    raise ValueError(
                        f"line_plots: plot {i}, line {name!r}: x {x.shape} and y {y.shape} must "
                        "be one-dimensional and as long as each other"
                    )
                style = {"color": colours[name], "linewidth": 1.2, **(styles or {}).get(name, {})}
                ax.plot(x, y, label=str(name), **style)
                dates = dates or x.dtype.kind == "M"
            ax.tick_params(labelsize=7)
            ax.set_xlabel(xlabel or "", fontsize=7)
            ax.set_ylabel(ylabel or "", fontsize=7)
            ax.grid(alpha=0.3)
            if legend and plot:
                ax.legend(fontsize=6, loc="best", frameon=False)
            if dates:  # slanted, so that long times do not overlap
                fig.autofmt_xdate()
            pictures.append(figure_to_array(fig))
    finally:
        plt.close(fig)
    pixels = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).contiguous()
    return Images(pixels, captions, [dict(f) for f in facts] if facts is not None else None)


def _numbers(values: Any, keep_dates: bool = False) -> np.ndarray:
    """Floats; with ``keep_dates``, times (datetime64, pandas timestamps, ISO text) as times."""
    if isinstance(values, Tensor):
        return values.detach().float().cpu().numpy()
    array = np.asarray(values)
    if keep_dates and array.dtype.kind in "OUS":
        with contextlib.suppress(TypeError, ValueError):  # not times: numbers, or the error
            array = array.astype("datetime64[ns]")
    return array if keep_dates and array.dtype.kind == "M" else array.astype(float)


# ---------------------------------------------------------------------- the grid of pictures
@dataclasses.dataclass(frozen=True)
class GridLayout:
    """Sizes in inches of a captioned grid: every image drawn at least ``min_inches`` on its
    shorter side (a readable size whatever its pixel count), at most ``max_inches``; each
    caption above its image, in a band as tall as the longest caption."""

    min_inches: float = 1.4
    max_inches: float = 2.6
    max_width: float = 16.0  # of the figure; more images wrap to the next row
    min_width: float = 5.0  # of the figure: room for its title
    max_cols: int = 8
    fontsize: float = 8.0
    gap: float = 0.25  # between cells
    title_fontsize: float = 9.0


def _line_height(fontsize: float) -> float:
    return fontsize * 1.25 / 72  # inches, matplotlib's default line spacing of 1.2 and a margin


def _wrap(caption: str, chars: int) -> str:
    lines: list[str] = []
    for line in caption.splitlines() or [""]:
        lines += textwrap.wrap(line, max(4, chars), break_on_hyphens=False) or [""]
    return "\n".join(lines)


def _image_size(h: int, w: int, layout: GridLayout) -> tuple[float, float]:
    """(width, height) in inches: one inch per 100 px, within [min, max] on the shorter side;
    a very wide or tall picture is held within max_width / 2 on its long side."""
    scale = min(max(min(h, w) / DPI, layout.min_inches), layout.max_inches) / min(h, w)
    width, height = w * scale, h * scale
    longest = max(layout.max_width / 2, layout.min_inches)
    if max(width, height) > longest:
        shrink = longest / max(width, height)
        width, height = width * shrink, height * shrink
    return width, height


def fit_lines(texts: list[str], width: float, fontsize: float) -> list[str]:
    """Each text wrapped (at spaces, else anywhere) so that its rendered width is at most
    ``width`` inches at ``fontsize``: wrapped by a character estimate, measured with the Agg
    renderer, and wrapped narrower, one text at a time, until it fits."""
    scratch = plt.figure(figsize=(max(width, 1.0), 1.0), dpi=DPI)
    try:
        renderer = scratch.canvas.get_renderer()  # type: ignore[attr-defined]
        chars = [int(width * 72 / (fontsize * 0.55))] * len(texts)
        out = [_wrap(t, c) for t, c in zip(texts, chars)]
        todo = list(range(len(texts)))
        for _ in range(12):  # each text is measured again only while it is too wide
            wide = []
            for i in todo:
                drawn = scratch.text(0, 0, out[i], fontsize=fontsize, linespacing=1.2)
                measured = drawn.get_window_extent(renderer).width
                drawn.remove()
                if measured > width * DPI and chars[i] > 4:
                    chars[i] = max(4, min(chars[i] - 1, int(chars[i] * width * DPI / measured)))
                    out[i] = _wrap(texts[i], chars[i])
                    wide.append(i)
            if not wide:
                break
            todo = wide
        return out
    finally:
        plt.close(scratch)


def suptitle(fig: Figure, text: str, fontsize: float = 9.0) -> int:
    """The figure's title at its top left, wrapped to its width; returns its number of lines."""
    wrapped = fit_lines([text], fig.get_figwidth() - 0.25, fontsize)[0]
    fig.suptitle(wrapped, fontsize=fontsize, x=0.01, ha="left", linespacing=1.2)
    return wrapped.count("\n") + 1


def grid_figure(
    images: Tensor,
    captions: list[str],
    title: str | None = None,
    layout: GridLayout | None = None,
) -> Figure:
    """A figure with one captioned panel per image (uint8, N x C x H x W), laid out in inches:
    each caption sits above its image in its own band, as tall as the longest caption, wrapped
    to the image's width (measured with the renderer), so no caption is cut off or covers an
    image, for any number of caption lines, images and pixel sizes; each image is drawn at
    least ``layout.min_inches`` on its shorter side."""
    layout = layout or GridLayout()
    n, _, h, w = images.shape
    img_w, img_h = _image_size(int(h), int(w), layout)
    cell_w = max(img_w, layout.min_inches)
    ncols = max(
        1, min(n, layout.max_cols, int((layout.max_width + layout.gap) // (cell_w + layout.gap)))
    )
    nrows = max(1, math.ceil(n / ncols))
    fig_w = max(ncols * cell_w + (ncols + 1) * layout.gap, layout.min_width)
    wrapped = fit_lines(captions, cell_w - 0.04, layout.fontsize)
    lines = max((t.count("\n") + 1 for t in wrapped), default=1)
    cap_h = lines * _line_height(layout.fontsize) + 0.1
    heading = fit_lines([title], fig_w - 2 * layout.gap, layout.title_fontsize)[0] if title else ""
    title_h = (
        _line_height(layout.title_fontsize) * (heading.count("\n") + 1) + 0.15 if title else 0.0
    )
    fig_h = title_h + nrows * (cap_h + img_h + layout.gap) + layout.gap
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)
    for i in range(n):
        r, c = divmod(i, ncols)
        left = layout.gap + c * (cell_w + layout.gap)
        top = fig_h - title_h - layout.gap - r * (cap_h + img_h + layout.gap)
        ax = fig.add_axes(
            (
                (left + (cell_w - img_w) / 2) / fig_w,
                (top - cap_h - img_h) / fig_h,
                img_w / fig_w,
                img_h / fig_h,
            )
        )
        ax.set_axis_off()
        img = images[i].permute(1, 2, 0).cpu().numpy()
        ax.imshow(_hw(img), cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
        fig.text(
            (left + cell_w / 2) / fig_w,
            (top - 0.02) / fig_h,
            wrapped[i],
            ha="center",
            va="top",
            fontsize=layout.fontsize,
            linespacing=1.2,
        )
    if title:
        fig.text(
            layout.gap / fig_w,
            1 - 0.08 / fig_h,
            heading,
            ha="left",
            va="top",
            fontsize=layout.title_fontsize,
            linespacing=1.2,
        )
    return fig


# ---------------------------------------------------------------------- tables
def table_figure(table: Table, max_chars: int = 64, title: str | None = None) -> Figure:
    """The table drawn as a matplotlib table filling its figure, which is sized to the text:
    each column as wide as its longest cell (cut to ``max_chars``), numbers through ``fmt``."""
    names = list(table.columns)
    rows = [[_cell(table.columns[name][i], max_chars) for name in names] for i in range(len(table))]
    chars = [max(len(n), *(len(r[j]) for r in rows)) + 2 for j, n in enumerate(names)]
    fontsize, char_w, row_h = 9.0, 9.0 * 0.58 / 72, 0.28  # inches per character and per row
    width = max(5.0, sum(chars) * char_w)
    heading = fit_lines([title], width, 9.0)[0] if title else ""
    title_h = _line_height(9.0) * (heading.count("\n") + 1) + 0.2 if title else 0.1
    fig = plt.figure(figsize=(width + 0.3, title_h + row_h * (len(rows) + 1) + 0.15), dpi=DPI)
    h = fig.get_figheight()
    ax = fig.add_axes((0.15 / fig.get_figwidth(), 0.15 / h, width / fig.get_figwidth(),
                       row_h * (len(rows) + 1) / h))  # fmt: skip
    ax.axis("off")
    if title:
        fig.text(0.15 / fig.get_figwidth(), 1 - 0.1 / h, heading, fontsize=9, va="top", ha="left")
    if rows:
        drawn = ax.table(
            cellText=rows,
            colLabels=names,
            cellLoc="left",
            colWidths=[c / sum(chars) for c in chars],
            bbox=Bbox.from_bounds(0, 0, 1, 1),
        )
        drawn.auto_set_font_size(False)
        drawn.set_fontsize(fontsize)
        for (r, _), cell in drawn.get_celld().items():
            cell.PAD = 0.5 * char_w / max(width * cell.get_width(), 1e-6)  # half a character
            if r == 0:
                cell.set_text_props(weight="bold")
                cell.set_facecolor("0.93")
    return fig


def _cell(value: object, max_chars: int) -> str:
    text = fmt(value, 4) if isinstance(value, (float, np.floating)) else str(value)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def figure_to_array(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- emitting
def emit_images(
    trainer: pl.Trainer,
    key: str,
    images: Tensor,
    captions: list[str],
    step: int | None = None,
    title: str | None = None,
    facts: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path | None:
    """Sends a captioned image grid to every logger and to a PNG file. Returns the PNG path."""
    if trainer.global_rank != 0:
        return None
    if len(images) != len(captions):
        raise ValueError(f"{key}: {len(images)} images but {len(captions)} captions")
    images = to_uint8(images).cpu()
    step = trainer.global_step if step is None else step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):  # W&B takes steps in increasing order only
            arrays = [_hw(img.permute(1, 2, 0).numpy()) for img in images]
            logger.log_image(key=key, images=arrays, caption=captions, step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            rgb = images[:, :3]  # TensorBoard's add_images takes 1 or 3 channels, not RGBA
            logger.experiment.add_images(key, rgb, global_step=step, dataformats="NCHW")
            text = "  \n".join(c.replace("\n", " | ") for c in captions)
            logger.experiment.add_text(f"{key}/captions", text, global_step=step)
    fig = grid_figure(images, captions, title)
    return _save(trainer, key, step, fig, facts, keep)


def emit_table(
    trainer: pl.Trainer,
    key: str,
    table: Table,
    step: int | None = None,
    title: str | None = None,
    facts: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path | None:
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
            logger.log_table(key=key, columns=names, data=rows, step=trainer.global_step)
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
    return _save(trainer, key, step, table_figure(table, title=title), facts, keep)


def emit_view(
    trainer: pl.Trainer,
    key: str,
    view: View,
    step: int | None = None,
    title: str | None = None,
    facts: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path | None:
    """Sends what a data module's ``show`` returned: images or a table. Images' ``facts`` go to
    the JSON beside the picture as ``pictures``: one record per picture, its caption and facts."""
    if isinstance(view, Images):
        if view.facts is not None:
            if len(view.facts) != len(view.captions):
                raise ValueError(
                    f"{key}: {len(view.captions)} pictures but {len(view.facts)} dicts of facts"
                )
            pictures = [{"caption": c, **f} for c, f in zip(view.captions, view.facts)]
            facts = {**(facts or {}), "pictures": pictures}
        return emit_images(trainer, key, view.pixels, view.captions, step, title, facts, keep)
    if isinstance(view, Table):
        return emit_table(trainer, key, view, step, title, facts, keep)
    raise TypeError(
        f"{key}: show() must return media.Images or media.Table, got {type(view).__name__}"
    )


def emit_figure(
    trainer: pl.Trainer,
    key: str,
    fig: Figure,
    step: int | None = None,
    facts: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path | None:
    """Sends a matplotlib figure to every logger and to a PNG file, then closes it."""
    if trainer.global_rank != 0:
        plt.close(fig)
        return None
    step = trainer.global_step if step is None else step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[figure_to_array(fig)], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, fig, global_step=step, close=False)
    return _save(trainer, key, step, fig, facts, keep)


def _save(
    trainer: pl.Trainer,
    key: str,
    step: int,
    fig: Figure,
    facts: dict[str, Any] | None = None,
    keep: int | None = None,
) -> Path:
    path = media_path(trainer, key, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(path)
    plt.close(fig)
    if facts is not None:
        path.with_suffix(".json").write_text(json.dumps(facts, indent=1, default=_jsonable) + "\n")
    if keep is not None:
        prune(path.parent, keep)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def prune(folder: Path, keep: int) -> list[Path]:
    """Deletes the files of all but the ``keep`` highest steps in a media folder (``<step>.png``,
    ``.csv``, ``.json``); returns what it deleted."""
    steps: dict[int, list[Path]] = {}
    for file in folder.iterdir():
        stem = file.name.split(".", 1)[0]
        if stem.isdigit() and file.is_file() and ".tmp." not in file.name:
            steps.setdefault(int(stem), []).append(file)
    doomed = [f for s in sorted(steps)[: max(0, len(steps) - max(keep, 1))] for f in steps[s]]
    for file in doomed:
        file.unlink(missing_ok=True)
    return doomed
