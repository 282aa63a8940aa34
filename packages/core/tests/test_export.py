"""``litforge.run.export``: the exported graph takes inputs as stored (uint8 pixels, a table's
raw features), does the data module's normalisation and standardisation itself, and gives what
the model gives on the data module's own prepared batch: checked here with ONNX Runtime and a
reloaded ``torch.export`` program against an independent PyTorch pass (``datamodule.sample``,
the path training and ``test`` take), on a batch size other than the one traced. A model that
cannot be traced fails with one line and leaves no file; a half-written file never shows."""

from pathlib import Path

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

from litforge import ClassificationExample, ClassificationPrediction, testing
from litforge.run.export import ATOL, RTOL, ExportError, RawInputModel, export_model
from litforge.testing import regression, sequence


@pytest.fixture(autouse=True)
def fresh_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LITFORGE_RUN_DIR", raising=False)


def raw_test_fields(datamodule, n: int) -> dict[str, Tensor]:
    """The first ``n`` test items as stored before standardisation (a user's raw values)."""
    arrays = datamodule.splits["test"]
    fields = {}
    for name in ("image", "features", "tokens", "lengths"):
        if name in arrays:
            values = arrays[name][:n]
            if name in datamodule.stats:
                mean, std = datamodule.stats[name]
                values = values * std + mean
            fields[name] = values
    return fields


def onnx_outputs(path: Path, fields: dict[str, Tensor]) -> dict[str, Tensor]:
    import onnxruntime  # here: collecting the fast tier need not load it

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {k: v.numpy() for k, v in fields.items()}
    return {n: torch.from_numpy(v) for n, v in zip(names, session.run(names, feed))}


def close(got: Tensor, want: Tensor) -> bool:
    return bool(((got - want).abs() <= ATOL + RTOL * want.abs()).all())


@pytest.mark.slow  # a short fit and two exports: about 15 s
def test_image_classifier_exports_with_its_normalisation(tmp_path: Path) -> None:
    run = testing.smoke(testing.main, tmp_path)
    model, data = run.model.eval(), run.datamodule
    fields = raw_test_fields(data, 5)
    assert fields["image"].dtype == torch.uint8  # pixels as stored: the graph normalises them
    exported = export_model(model, data, {"image": fields["image"][:3]}, tmp_path / "m.onnx")
    assert exported.inputs == ("image",) and exported.path == tmp_path / "m.onnx"
    assert {"logits", "probs", "pred"} <= set(exported.outputs)
    assert exported.max_diff <= ATOL and exported.batches == (4, 1)
    assert "max abs difference" in exported.describe() and "tolerance" in exported.describe()
    # independent: the data module's own batch (normalised by its transform) through the model
    with torch.no_grad():
        want = model(data.sample("test", 5))
    got = onnx_outputs(exported.path, fields)  # 5 items: a batch size the trace never saw
    assert close(got["probs"], want.probs) and close(got["logits"], want.logits.float())
    assert torch.equal(got["pred"], want.pred)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]

    pt2 = export_model(model, data, fields, tmp_path / "m.pt2", "torch_export")
    program = torch.export.load(str(pt2.path)).module()
    with torch.no_grad():
        probs = dict(zip(pt2.outputs, program(fields["image"][:2])))["probs"]
    assert close(probs, want.probs[:2])


@pytest.mark.slow  # a short fit and an export: about 10 s
def test_table_regressor_exports_its_standardisation_and_answers_in_target_units(
    tmp_path: Path,
) -> None:
    run = testing.smoke(regression.main, tmp_path)
    model, data = run.model.eval(), run.datamodule
    assert set(data.stats) == {"features", "target"}  # both standardised by the config
    fields = raw_test_fields(data, 6)
    exported = export_model(model, data, fields, tmp_path / "rows.onnx")
    assert exported.inputs == ("features",) and exported.outputs == ("value",)
    got = onnx_outputs(exported.path, {"features": fields["features"][:2]})["value"]
    mean, std = data.stats["target"]
    with torch.no_grad():
        want = model(data.sample("test", 2)).value * std + mean  # in the target's own units
    assert close(got, want), (got, want)
    assert RawInputModel(model, data, ["features"])(fields["features"][:2])[0].shape == (2,)


class PackedGRU(torch.nn.Module):
    """A GRU over packed sequences: their lengths set the shapes, which torch.export refuses."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, 8)
        self.rnn = torch.nn.GRU(8, 8, batch_first=True)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:
        lengths = torch.full((len(example.tokens),), example.tokens.shape[1])
        packed = pack_padded_sequence(self.embed(example.tokens), lengths, batch_first=True)
        return ClassificationPrediction(self.head(self.rnn(packed)[1][-1]))


@pytest.mark.slow  # a short fit, an export and a failed one: about 15 s
def test_token_sequences_export_and_a_model_that_does_not_trace_fails_in_one_line(
    tmp_path: Path,
) -> None:
    run = testing.smoke(sequence.main, tmp_path)
    model, data = run.model.eval(), run.datamodule
    fields = raw_test_fields(data, 4)
    assert fields["tokens"].dtype == torch.int64
    exported = export_model(model, data, fields, tmp_path / "seq.onnx")
    got = onnx_outputs(exported.path, {"tokens": fields["tokens"][:3]})
    with torch.no_grad():
        assert close(got["probs"], model(data.sample("test", 3)).probs)

    target = tmp_path / "packed.onnx"
    with pytest.raises(ExportError) as refused:
        export_model(PackedGRU(data.vocab_size), data, fields, target)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("ONNX export failed"), message
    assert len(message) < 400 and "pack_padded_sequence" in message, message
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


class MaskedMeanPool(torch.nn.Module):
    """Token embeddings averaged over each sequence's real tokens (``example.lengths``): a
    model of two inputs, the way a text regressor or classifier is often written."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab_size, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, example: ClassificationExample) -> ClassificationPrediction:
        tokens, lengths = example.tokens, example.lengths
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None]
        summed = (self.embed(tokens) * mask[..., None]).sum(1)
        return ClassificationPrediction(self.head(summed / lengths[:, None].clamp(min=1)))


@pytest.mark.slow  # a short fit and two exports: about 15 s
@pytest.mark.parametrize("format", ["onnx", "torch_export"])
def test_a_model_of_two_inputs_exports_and_runs_on_another_batch_size(
    tmp_path: Path, format: str
) -> None:
    """Tokens and their lengths: both formats write a graph that runs on a batch of 3 (traced
    on 4) and gives the model's own outputs. (torch.export's program of a ``forward(*tensors)``
    of two inputs could not be called: ``NameError: name 'L' is not defined``.)"""
    run = testing.smoke(sequence.main, tmp_path)
    data = run.datamodule
    tokens = raw_test_fields(data, 4)["tokens"]
    lengths = torch.tensor([tokens.shape[1], 3, 1, 5])
    model = MaskedMeanPool(data.vocab_size).eval()
    suffix = ".onnx" if format == "onnx" else ".pt2"
    fields = {"tokens": tokens, "lengths": lengths}
    exported = export_model(model, data, fields, tmp_path / f"two{suffix}", format=format)
    assert exported.inputs == ("tokens", "lengths") and exported.batches == (4, 1)
    three = {k: v[1:] for k, v in fields.items()}
    with torch.no_grad():
        want = model(ClassificationExample(index=torch.arange(3), label=None, **three)).logits
    if format == "onnx":
        got = onnx_outputs(exported.path, three)["logits"]
    else:
        program = torch.export.load(str(exported.path)).module()
        got = dict(zip(exported.outputs, program(*three.values())))["logits"]
    assert close(got, want)


@pytest.mark.slow  # a short fit: about 10 s
def test_a_kind_whose_inputs_export_cannot_make_up_asks_for_a_sample(tmp_path: Path) -> None:
    """A data module whose ``read_inputs`` takes files only (a kind of one's own): export
    without a sample stops with one line naming ``--sample`` and writes nothing; with a sample
    it exports."""
    import litforge

    run = testing.train(testing.main, tmp_path, "fit", "--trainer.max_epochs=1")
    predictor = litforge.load(run.run_dir)
    stored = raw_test_fields(run.datamodule, 4)

    def read_inputs(source):  # what a user's override for files of their own looks like
        if not isinstance(source, str | Path):
            raise TypeError(f"expected a folder of recordings, not {type(source).__name__}")
        return litforge.Arrays(image=stored["image"], id=torch.arange(4))

    predictor.data.read_inputs = read_inputs
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as refused:
        litforge.export(predictor, target)
    message = str(refused.value)
    assert "\n" not in message and "--sample=" in message, message
    assert "expected a folder of recordings" in message and not target.exists()
    exported = litforge.export(predictor, target, sample=tmp_path)
    assert exported.path == target and target.exists()
