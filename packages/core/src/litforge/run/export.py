"""Export a trained model to a file another runtime reads: ONNX (``torch.onnx.export``, checked
with ONNX Runtime) or ``torch.export`` (a ``.pt2`` program), with what the data taught it inside.

    python -m <project> export --ckpt_path=<checkpoint or run folder> [--format=onnx]
        [--output=PATH] [--sample=<new inputs>]

``RawInputModel`` is the graph that is exported: the model behind the data module's own input
preparation, so that an application feeds it inputs as they are stored, not as the network sees
them: uint8 pixels (N x C x H x W; the image layer's per-channel mean and std are in the graph),
a table's rows of raw float features (its standardisation is in the graph), token ids and their
lengths (a text's tokenisation is not a tensor operation: the vocabulary stays outside, in the
checkpoint). Its outputs are the prediction's tensors, by name (``logits``, ``probs``, ``pred``,
``entropy`` for a classifier; ``value`` for a regressor, back in the target's own units when the
target was standardised; ``logits`` and ``pred`` for a segmenter), each with a dynamic first
(batch) dimension.

Every export is checked before it counts: the written file is run (ONNX Runtime; the loaded
``.pt2`` program) on a sample and compared with PyTorch, and the largest difference is printed
against ``TOLERANCE``. The file is written under a temporary name and renamed when the check has
passed: a file at the output path is a whole, checked export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from litforge.errors import LitforgeError, SettingError, one_line

Format = Literal["onnx", "torch_export"]
FORMATS: dict[str, str] = {"onnx": ".onnx", "torch_export": ".pt2"}
# An output of the export agrees with PyTorch's where |exported - torch| <= ATOL + RTOL * |torch|
# (float32 kernels differ between runtimes in their last bits; 1e-4 is far above that and far
# below any difference that changes a prediction).
ATOL, RTOL = 1e-4, 1e-4
TOLERANCE = f"{ATOL:g} + {RTOL:g} * |value|"
SAMPLE_SIZE = 4  # items the export is traced and checked with (2 at least: a dynamic batch)
MAX_SAMPLE = 256  # of a sample given (--sample), the first items only


class ExportError(LitforgeError):
    """A model that cannot be exported in the format asked for, or an export that does not
    agree with PyTorch."""


class RawInputModel(nn.Module):
    """The model behind its data module's input preparation, from stored inputs to the
    prediction's tensors: what ``export`` writes, usable as any ``nn.Module``.

    Args:
        model: the trained model (a ``BaseModel``); put in eval mode.
        datamodule: its data module, holding what it learned from the training data (an
            ``ArrayDataModule``: ``stats`` of the standardised fields, ``transform("test")``
            for the image layer's normalisation, ``make_example``).
        inputs: the names of the Example fields the forward takes, in order (``["image"]``,
            ``["features"]``, ``["tokens", "lengths"]``).

    ``forward(*tensors)`` returns a tuple, one tensor per name of ``outputs``.
    """

    def __init__(self, model: nn.Module, datamodule: Any, inputs: Sequence[str]) -> None:
        super().__init__()
        self.model = model.eval()
        self.inputs = tuple(inputs)
        self.example_type = datamodule.example_type
        self._make_example = datamodule.make_example
        stats: Mapping[str, tuple[Tensor, Tensor]] = getattr(datamodule, "stats", {}) or {}
        self.standardized = tuple(f for f in self.inputs if f in stats)
        for name in self.standardized:
            mean, std = stats[name]
            self.register_buffer(f"{name}_mean", mean.detach().float().clone())
            self.register_buffer(f"{name}_std", std.detach().float().clone())
        target = stats.get("target")  # a standardised target: predictions back in its units
        self.rescaled = target is not None and "target" not in self.inputs
        if target is not None:
            self.register_buffer("target_mean", target[0].detach().float().clone())
            self.register_buffer("target_std", target[1].detach().float().clone())
        transform = getattr(datamodule, "transform", None)
        self.transform = transform("test") if callable(transform) else None
        missing = [
            f.name
            for f in dataclasses.fields(self.example_type)
            if f.name not in (*self.inputs, "index")
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        self._absent = dict.fromkeys(missing)  # labels and targets: None, as at prediction
        self.outputs: tuple[str, ...] = ()

    def prepare(self, *tensors: Tensor) -> dict[str, Tensor]:
        """The fields as the network sees them: standardised, normalised."""
        fields = dict(zip(self.inputs, tensors, strict=True))
        for name in self.standardized:
            mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
            fields[name] = (fields[name].float() - mean) / std
        if self.transform is not None:
            index = torch.arange(tensors[0].shape[0], device=tensors[0].device)
            fields = self.transform(fields, index)
        return fields

    def predict(self, *tensors: Tensor) -> dict[str, Tensor]:
        """Every tensor of the prediction (its fields and derived values), by name."""
        fields = self.prepare(*tensors)
        index = torch.arange(tensors[0].shape[0], device=tensors[0].device)
        example = self._make_example(index, {**fields, **self._absent})
        out = dict(self.model(example).tensors())
        if self.rescaled and "value" in out:
            out["value"] = out["value"].float() * self.target_std + self.target_mean
        return out

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        out = self.predict(*tensors)
        if not self.outputs:
            self.outputs = tuple(out)
        return tuple(out[name] for name in self.outputs)


@dataclass
class Exported:
    """What ``export`` (``export_model``) wrote: the file, its format, its inputs and outputs,
    and the check's largest difference from PyTorch (``max_diff``, within ``TOLERANCE``)."""

    path: Path
    format: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_diff: float
    batches: tuple[int, ...]  # the batch sizes the check ran on

    def describe(self) -> str:
        """Two lines: the file written, and its check against PyTorch."""
        runtime = "ONNX Runtime" if self.format == "onnx" else "torch.export.load"
        batches = " and ".join(map(str, self.batches))
        return (
            f"exported: {self.path} ({self.format}; inputs {', '.join(self.inputs)}; "
            f"outputs {', '.join(self.outputs)}; dynamic batch)\n"
            f"checked: {runtime} against PyTorch on batches of {batches}: max abs difference "
            f"{self.max_diff:.2e} (tolerance {TOLERANCE})"
        )


def export_model(
    model: nn.Module,
    datamodule: Any,
    sample: Mapping[str, Tensor],
    path: str | Path,
    format: Format = "onnx",
) -> Exported:
    """Exports ``RawInputModel(model, datamodule, sample's fields)`` to ``path`` in ``format``
    ('onnx' or 'torch_export'), traced on ``sample`` (stored inputs by field name, a batch of
    at least one item), and checks the written file on it against PyTorch. Written under a
    temporary name, renamed once checked; raises ``ExportError`` (nothing left at ``path``)
    when the model does not export or the check fails."""
    if format not in FORMATS:
        raise SettingError(f"--format={format}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    wrapper = RawInputModel(model, datamodule, list(sample))
    args = _batch_of_several(sample)
    with torch.no_grad():
        expected = wrapper.predict(*args)
        wrapper(*args)  # fixes the outputs' order
    path.parent.mkdir(parents=True, exist_ok=True)
    # the runtimes read a file by its suffix: the temporary name keeps it
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{FORMATS[format]}")
    try:
        if format == "onnx":
            _write_onnx(wrapper, args, partial)
            run = _onnx_runner(partial, wrapper.inputs)
        else:
            _write_pt2(wrapper, args, partial)
            run = _pt2_runner(partial, wrapper.outputs)
        # the traced batch, and one item alone: the batch dimension is not fixed to the sample's
        max_diff = _compare(expected, _ran(run, args, path.name), path.name)
        one = tuple(t[:1] for t in args)
        with torch.no_grad():
            alone = _compare(wrapper.predict(*one), _ran(run, one, path.name), path.name)
        max_diff = max(max_diff, alone)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Exported(path, format, wrapper.inputs, wrapper.outputs, max_diff, (len(args[0]), 1))


def _ran(run: Any, args: tuple[Tensor, ...], name: str) -> dict[str, Tensor]:
    """``run(args)``; a failure (a batch size the graph does not take) as one line."""
    try:
        return run(args)  # type: ignore[no-any-return]
    except Exception as err:
        raise ExportError(
            f"{name} does not run on a batch of {len(args[0])}: "
            f"{one_line(str(err), limit=200)}; nothing was written"
        ) from err


def _batch_of_several(sample: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
    """The sample on the CPU, with at least SAMPLE_SIZE items (repeated if fewer: a batch of
    one would fix the batch dimension to 1 in the traced graph) and at most MAX_SAMPLE."""
    if not sample:
        raise ExportError("the export's sample has no input fields")
    tensors = [t.detach().cpu()[:MAX_SAMPLE] for t in sample.values()]
    n = len(tensors[0])
    if n == 0:
        raise ExportError("the export's sample has no items")
    if n < SAMPLE_SIZE:
        repeats = math.ceil(SAMPLE_SIZE / n)
        tensors = [t.repeat(repeats, *([1] * (t.dim() - 1)))[:SAMPLE_SIZE] for t in tensors]
    return tuple(tensors)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress lines and its notes about operators this graph does not use
    (torchvision's), which a user can do nothing about."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _dynamic_batch(args: Sequence[Tensor]) -> tuple[dict[int, Any], ...]:
    """The first dim of every input is the batch, one size for all."""
    batch = torch.export.Dim("batch", min=1)
    return tuple({0: batch} for _ in args)


class _NamedInputs(nn.Module):
    """``RawInputModel`` behind a forward with one named parameter per input
    (``forward(tokens, lengths)``): torch.export (torch 2.9) writes a program of a
    ``forward(*tensors)`` of two inputs or more whose guards cannot run (``NameError: name 'L'
    is not defined`` at every call)."""

    def __init__(self, wrapper: RawInputModel) -> None:
        super().__init__()
        self.wrapper = wrapper

    @classmethod
    def of(cls, wrapper: RawInputModel) -> _NamedInputs:
        names = [f"x{i}" for i in range(len(wrapper.inputs))]  # valid names, whatever the fields
        scope: dict[str, Any] = {}
        exec(  # the same technique as dataclasses' generated __init__
            f"def forward(self, {', '.join(names)}):\n"
            f"    return self.wrapper({', '.join(names)})\n",
            scope,
        )
        named = type(f"{cls.__name__}{len(names)}", (cls,), {"forward": scope["forward"]})
        return named(wrapper)  # type: ignore[no-any-return]


def _failed(what: str, err: BaseException) -> ExportError:
    """One line: the first line of the exporter's summary of why (its messages run to pages)."""
    text = str(err)
    summary = text.split("## Exception summary", 1)[-1] if "## Exception summary" in text else text
    reason = one_line(summary.split("(Refer to", 1)[0], limit=240)
    return ExportError(
        f"{what} failed: {type(err.__cause__ or err).__name__}: {reason}. The model's forward "
        "must be traceable by torch.export (no data-dependent shapes, e.g. pack_padded_sequence)"
    )


def _program(wrapper: RawInputModel, args: tuple[Tensor, ...], what: str) -> Any:
    """``torch.export``'s program of ``wrapper`` with a dynamic batch: traced as torch does by
    default (non-strict); if that fails, by TorchDynamo (strict), which also keeps the batch
    dynamic through Python's ``len(tensor)`` (an int, which the default must fix)."""
    named = _NamedInputs.of(wrapper)
    with _quiet_exporter(), torch.no_grad():
        try:
            return torch.export.export(named, args, dynamic_shapes=_dynamic_batch(args))
        except Exception as first:
            try:
                return torch.export.export(
                    named, args, dynamic_shapes=_dynamic_batch(args), strict=True
                )
            except Exception:
                raise _failed(what, first) from first


def _write_onnx(wrapper: RawInputModel, args: tuple[Tensor, ...], path: Path) -> None:
    program = _program(wrapper, args, "ONNX export")
    try:
        with _quiet_exporter(), torch.no_grad():
            onnx_program = torch.onnx.export(
                program,
                args,
                dynamo=True,
                input_names=list(wrapper.inputs),
                output_names=list(wrapper.outputs),
                verbose=False,
                report=False,
            )
            assert onnx_program is not None
            onnx_program.save(str(path))
    except Exception as err:
        raise _failed("ONNX export", err) from err


def _onnx_runner(path: Path, inputs: Sequence[str]) -> Any:
    """A function of the input tensors that runs the ONNX file with ONNX Runtime (CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(args: Sequence[Tensor]) -> dict[str, Tensor]:
        feed = {name: t.numpy() for name, t in zip(inputs, args)}
        return {n: torch.from_numpy(v) for n, v in zip(names, session.run(names, feed))}

    return run


def _write_pt2(wrapper: RawInputModel, args: tuple[Tensor, ...], path: Path) -> None:
    program = _program(wrapper, args, "torch.export")
    try:
        with _quiet_exporter():
            torch.export.save(program, str(path))
    except Exception as err:
        raise _failed("torch.export", err) from err


def _pt2_runner(path: Path, outputs: Sequence[str]) -> Any:
    """A function of the input tensors that runs the saved program, loaded back."""
    with _quiet_exporter():
        module = torch.export.load(str(path)).module()

    def run(args: Sequence[Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            return dict(zip(outputs, module(*args)))

    return run


def _compare(expected: Mapping[str, Tensor], got: Mapping[str, Tensor], name: str) -> float:
    """The largest absolute difference of the float outputs, each within the tolerance; the
    integer outputs (a class, a mask: argmaxes of float ones, which a near tie may flip) need
    only their shape."""
    worst = 0.0
    for key, want in expected.items():
        have = got.get(key)
        if have is None or tuple(have.shape) != tuple(want.shape):
            shape = None if have is None else tuple(have.shape)
            raise ExportError(
                f"{name}: output {key!r} is {shape}, PyTorch's is {tuple(want.shape)}: the "
                "export does not agree with the model; nothing was written"
            )
        if not want.is_floating_point():
            continue
        diff = (have.float() - want.float()).abs()
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
        if not bool((diff <= ATOL + RTOL * want.float().abs()).all()):
            raise ExportError(
                f"{name}: output {key!r} differs from PyTorch's by up to {float(diff.max()):.2e}, "
                f"above the tolerance {TOLERANCE}; nothing was written"
            )
    return worst


def export(
    source: Any,
    output: str | Path | None = None,
    format: Format = "onnx",
    sample: Any = None,
) -> Exported:
    """Exports a trained model, what its data taught inside: ``source`` is a checkpoint, a run
    folder (its best checkpoint) or a ``Predictor`` (``litforge.load``'s); ``output`` the file
    (default: ``<run folder>/export/<checkpoint>.onnx``, ``.pt2`` for 'torch_export');
    ``sample``: new inputs to trace and check it with, as ``predict`` reads them (default:
    made-up inputs of the model's kind). Returns what was written and checked (``Exported``;
    its ``describe()`` is what the command prints); raises ``ExportError`` (one line, no file
    written) when the model does not export or the check fails."""
    from litforge.run.use import Predictor, load

    predictor = source if isinstance(source, Predictor) else load(source)
    path = Path(output) if output is not None else default_output(predictor.checkpoint, format)
    fields = export_sample(predictor, sample)
    return export_model(predictor.model, predictor.data, fields, path, format)


def default_output(ckpt_path: str | Path, format: str) -> Path:
    """Where ``export`` writes without ``--output``: ``<run folder>/export/<checkpoint>.onnx``
    (``.pt2``) for a checkpoint in a run's ``checkpoints/``, else beside the checkpoint."""
    ckpt = Path(ckpt_path)
    folder = ckpt.parent.parent / "export" if ckpt.parent.name == "checkpoints" else ckpt.parent
    return folder / f"{ckpt.stem}{FORMATS[format]}"


def export_sample(predictor: Any, source: Any = None, n: int = SAMPLE_SIZE) -> dict[str, Tensor]:
    """Stored inputs to trace and check an export with, by field name: ``source`` read by the
    predictor as new inputs (a folder of images, a CSV, a text file: what ``predict`` reads),
    else ``n`` made-up inputs of the model's kind, from what the checkpoint knows (the image
    size and channels, the feature columns and their statistics, the vocabulary): no data. A
    data module of a kind of its own makes them with ``made_up_inputs(n)``, if it has one."""
    data = predictor.data
    if source is not None:
        inputs = predictor.inputs(source)
    else:
        maker = getattr(data, "made_up_inputs", None)  # a data module's own, if it has one
        try:
            inputs = predictor.inputs(maker(n) if callable(maker) else _made_up_inputs(data, n))
        except Exception as err:  # a kind of one's own reads inputs no made-up ones can be
            raise ExportError(
                f"{type(data).__name__} reads new inputs that export cannot make up "
                f"({type(err).__name__}: {one_line(str(err), limit=160)}): give a few, as "
                "predict reads them: --sample=<file or folder>"
            ) from err
    wanted = {f.name for f in dataclasses.fields(data.example_type)} - {"index", "id"}
    fields = {k: v for k, v in inputs.items() if k in wanted}
    if not fields:
        raise ExportError(
            f"the inputs read for the export have the fields {list(inputs)}, none of which "
            f"{data.example_type.__name__} takes"
        )
    return fields


def _made_up_inputs(data: Any, n: int) -> Any:
    """``n`` raw inputs of the data module's kind, as ``read_inputs`` takes them."""
    g = torch.Generator().manual_seed(0)
    if hasattr(data, "image_size") and hasattr(data, "in_channels"):
        import numpy as np

        (h, w), c = data.image_size, data.in_channels
        pixels = torch.randint(0, 256, (n, h, w, c), generator=g, dtype=torch.uint8).numpy()
        return [np.ascontiguousarray(p) for p in pixels]
    vocabulary = getattr(data, "vocabulary", None)
    if vocabulary is not None:
        tokens = list(vocabulary.tokens[2:]) or ["a"]
        sep = " " if vocabulary.tokenize_mode == "words" else ""
        lengths = torch.randint(1, 9, (n,), generator=g).tolist()
        picks = [torch.randint(0, len(tokens), (k,), generator=g).tolist() for k in lengths]
        return [sep.join(tokens[j] for j in pick) for pick in picks]
    names = getattr(data, "feature_names", None)
    stats = getattr(data, "stats", {}) or {}
    width = len(names) if names is not None else int(data.num_features)
    mean, std = stats.get("features", (torch.zeros(width), torch.ones(width)))
    values = mean + std * torch.randn(n, width, generator=g)
    if names is None:
        return values.numpy()
    return [dict(zip(names, row)) for row in values.tolist()]


def export_command(project: Any, argv: Sequence[str], module: str | None = None) -> int:
    """``python -m <project> export``: loads the checkpoint (or a run folder's best), exports
    it with a sample of its own inputs, prints the file written and its check. Returns the exit
    status."""
    import argparse
    import sys

    name = module or project.name

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # type: ignore[override]
            print(f"error: {message} ({self.prog} --help lists the settings)", file=sys.stderr)
            raise SystemExit(2)

    parser = Parser(
        prog=f"python -m {name} export",
        description="Writes the model, its input normalisation inside, as an ONNX file "
        "(checked with ONNX Runtime) or a torch.export program (.pt2), with a dynamic batch "
        "dimension; prints the file written.",
    )
    parser.add_argument(
        "--ckpt_path", required=True, help="a checkpoint, or a run folder (its best)"
    )
    parser.add_argument("--format", default="onnx", choices=list(FORMATS), help="default: onnx")
    parser.add_argument(
        "--output", default=None, help="the file to write (default: <run>/export/<checkpoint>.onnx)"
    )
    parser.add_argument(
        "--sample",
        default=None,
        help="new inputs to trace and check the export with, as predict reads them (a folder "
        "of images, a CSV, a text file); default: made-up inputs of the model's kind",
    )
    args = parser.parse_args(list(argv))

    print(export(args.ckpt_path, args.output, args.format, args.sample).describe())
    return 0
