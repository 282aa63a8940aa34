"""User-facing errors as a user sees them: bad inputs through the real command line, each in its
own process (``python -m <project> ...`` or the script that ``make new-project`` runs).

Each case checks the exit status (2: the command line, a config file or a setting's value is
wrong, and no run folder is left; 1: the run could not go on), that stderr has exactly one
``error: ...`` line, that this line names the file, key or value at fault, that no "Traceback"
is printed anywhere, and, where a run existed, that its files are as they were. The fast
synthetic tasks (``python -m litforge.testing``: tiny images; ``python -m template_project``)
and cifar10 on the tiny generated image folder (root conftest.py) keep each process to a few
seconds, most of it the import of torch and Lightning; the whole file takes longer than the fast
tier allows (some 40 processes): slow tier. docs/runs.md, "Faults and bad input", lists every
case with its test.

Where the message comes from: argument and config errors are jsonargparse's, printed on one line
by ``LitforgeCLI.parse_arguments`` (with a "did you mean" for a key close to a real one, the
other project that saved a config, every command for an unknown one); a value that cannot be
used is a ``litforge.errors.SettingError`` (exit status 2); data, checkpoint and non-finite-loss
errors are other ``LitforgeError``s; both printed on one line by ``litforge.run``; the
unwritable run folder is ``rundir.check_writable``'s exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from litforge import testing
from litforge.run.handoff import HANDOFF_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROBES = REPO / "packages" / "core" / "tests"  # reliability_probes.PoisonBatch
QUIET = ["--trainer.enable_progress_bar=false", "--run.loggers=[csv]"]
SYNTHETIC = ["-m", "litforge.testing", "fit", *QUIET]
# cifar10 as given (no timing of this machine, a narrow network), one batch of each stage
CIFAR10 = ["-m", "cifar10_demo", "fit", *QUIET, "--size=null", "--run.time_budget=null"]
CIFAR10 += ["--run.precision=null", "--model.widths=[8,16,16]", "--trainer.precision=32-true"]
CIFAR10 += ["--trainer.fast_dev_run=true", "--data.batch_size=50"]


def command(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    # the probes, and a PYTHONPATH already set (a checkout of core other than the installed one)
    path = os.pathsep.join(filter(None, [str(PROBES), env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=path, no_proxy="127.0.0.1,localhost")
    env.update(NO_PROXY="127.0.0.1,localhost", LITFORGE_CACHE=str(Path(env["HOME"]) / "cache"))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def error_line(done: subprocess.CompletedProcess[str], status: int, *names: str) -> str:
    """The one ``error:`` line of stderr, after checking the status, the names and that no
    traceback was printed."""
    out = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
    assert "Traceback" not in done.stdout + done.stderr, out
    assert done.returncode == status, out
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    missing = [name for name in names if name not in errors[0]]
    assert not missing, f"{missing} not in: {errors[0]}"
    print(errors[0])  # pytest -rA shows what each case printed
    return errors[0]


def closed_port() -> int:
    """A local port that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def image_copy(tiny_image_folder: Path, tmp_path: Path) -> Path:
    """A copy of the tiny image folder, for a test to break."""
    return Path(shutil.copytree(tiny_image_folder, tmp_path / "images"))


# ---------------------------------------------------------------------- data
def test_missing_data_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    line = error_line(command(*CIFAR10, f"--data.root={missing}"), 1, str(missing))
    assert "does not exist" in line and "DATA=" in line, line


def test_corrupt_image(image_copy: Path, tmp_path: Path) -> None:
    bad = next((image_copy / "train" / "class3").iterdir())
    bad.write_bytes(b"not a PNG at all")
    done = command(*CIFAR10, f"--data.root={image_copy}", f"--run.root={tmp_path / 'runs'}")
    assert "cannot decode" in error_line(done, 1, str(bad))


def test_an_image_of_another_size_is_resized(image_copy: Path, tmp_path: Path) -> None:
    """cifar10 reads its folders at 32 x 32, resizing what is not (a reader without a size
    refuses mixed sizes and says to pass one: test_image_folder.py::
    test_image_of_another_size_than_the_first)."""
    odd = next((image_copy / "test" / "class5").iterdir())
    Image.new("RGB", (16, 16)).save(odd)
    done = command(*CIFAR10, f"--data.root={image_copy}", f"--run.root={tmp_path / 'runs'}")
    out = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 0, out
    assert "Traceback" not in done.stderr and "error:" not in done.stderr, out


def test_batch_larger_than_the_training_set(tmp_path: Path) -> None:
    done = command(*SYNTHETIC, "--data.batch_size=1000", f"--run.root={tmp_path}")
    error_line(done, 1, "batch_size=1000", "192 items")


def test_unreachable_download(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    done = command(*CIFAR10, f"--data.root={tmp_path}", f"--data.url={url}")
    assert "could not download" in error_line(done, 1, url)


class _Serve(BaseHTTPRequestHandler):
    body = b"these bytes are not the CIFAR-10 archive"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A local HTTP server that answers every path with a few wrong bytes; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_md5_mismatch(server: str, tmp_path: Path) -> None:
    url = f"{server}/cifar-10-python.tar.gz"
    done = command(*CIFAR10, f"--data.root={tmp_path}", f"--data.url={url}")
    line = error_line(done, 1, "md5 mismatch", str(tmp_path / "cifar-10-python.tar.gz"), url)
    assert "the file was removed" in line and not any(tmp_path.glob("cifar-10-python*"))


# ---------------------------------------------------------------------- arguments and configs
def test_misspelled_key(tmp_path: Path) -> None:
    done = command(*SYNTHETIC, "--trainer.max_epohcs=3", f"--run.root={tmp_path}")
    error_line(done, 2, "--trainer.max_epohcs=3", "did you mean --trainer.max_epochs?")
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_abbreviated_key_is_refused(tmp_path: Path) -> None:
    """The README's example: a prefix of a key is not taken for the key."""
    done = command(*SYNTHETIC, "--trainer.max_epoch=3", f"--run.root={tmp_path}")
    error_line(done, 2, "--trainer.max_epoch=3", "did you mean --trainer.max_epochs?")


def test_misspelled_key_in_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("trainer:\n  max_epochs: 2\nmodle:\n  dropout: 0.1\n")
    error_line(command(*SYNTHETIC, f"--config={config}", f"--run.root={tmp_path}"), 2, "modle")


def test_malformed_yaml(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_epochs: [2\nmodel: {}\n")
    done = command(*SYNTHETIC, "--config", str(config), f"--run.root={tmp_path}")
    assert "not valid YAML" in error_line(done, 2, str(config), "line 3")


def test_unknown_logger_name(tmp_path: Path) -> None:
    done = command(
        *SYNTHETIC[: -len(QUIET)], "--run.loggers=[csv,tensorbord]", f"--run.root={tmp_path}"
    )
    error_line(done, 2, "run.loggers", "tensorbord")


def test_bad_new_project_name() -> None:
    """What ``make new-project NAME=Foo-Bar`` runs; a bad name changes nothing (tests/test_new_project.py)."""
    done = command("scripts/new_project.py", "Foo-Bar")
    assert "nothing was changed" in error_line(done, 2, "'Foo-Bar'", "not a valid project name")


# ---------------------------------------------------------------------- checkpoints and runs
def test_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "last.ckpt"
    done = command(*SYNTHETIC, f"--ckpt_path={missing}", f"--run.root={tmp_path / 'runs'}")
    error_line(done, 1, str(missing), "--ckpt_path")
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of one step of the synthetic image task (litforge.testing)."""
    run = tmp_path_factory.mktemp("synthetic") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(HANDOFF_ENV, raising=False)
        one_step = ["--trainer.max_steps=1", "--trainer.limit_val_batches=0"]
        no_extras = ["--trainer.callbacks=[]", "--run.test_after_fit=false"]
        testing.main(["fit", *QUIET, f"--run.dir={run}", *one_step, *no_extras])
    return run / "checkpoints" / "last.ckpt"


def test_checkpoint_of_another_project(synthetic_checkpoint: Path, tmp_path: Path) -> None:
    done = command(
        "-m", "template_project", "fit", *QUIET, f"--ckpt_path={synthetic_checkpoint}",
        f"--run.root={tmp_path}", "--data.n_train=256", "--data.n_test=64", "--data.val_size=64",
    )  # fmt: skip
    line = error_line(done, 1, str(synthetic_checkpoint), "ShapeModel", "another project")
    # the checkpoint's saved settings name what ShapeModel does not take, before its weights
    assert "another model" in line and "model.dropout" in line, line


def test_unwritable_run_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be")
    done = command(*SYNTHETIC, f"--run.root={blocker / 'runs'}")
    error_line(done, 1, str(blocker / "runs" / "synthetic"), "not writable", "--run.root")


def test_nan_loss_in_the_first_epoch_says_there_is_no_checkpoint_yet(tmp_path: Path) -> None:
    """A NaN before the first checkpoint: the line says so (no checkpoint to go back to) and
    what to lower; a NaN after one names it (packages/core/tests/test_interrupts.py)."""
    poison = '{"class_path": "reliability_probes.PoisonBatch", "init_args": {"step": 2}}'
    done = command(*SYNTHETIC, f"--trainer.callbacks+={poison}", f"--run.root={tmp_path}")
    line = error_line(done, 1, "loss is nan", "at step", "No checkpoint was written before it")
    assert "--model.optimizer.init_args.lr=0.001" in line and "last good" not in line, line
    (run,) = (tmp_path / "synthetic").iterdir()
    assert not list(run.glob("checkpoints/*.ckpt"))


# ---------------------------------------------------------------------- values out of range
@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--data.batch_size=0"], ["--data.batch_size=0", "at least 1"]),
        (["--data.eval_batch_size=-1"], ["--data.eval_batch_size=-1", "at least 1"]),
        (["--trainer.max_epochs=-3"], ["--trainer", "max_epochs", "-3"]),
        (["--run.time_budget=0"], ["--run.time_budget=0", "more than 0"]),
        (
            ["--lr_scheduler=torch.optim.lr_scheduler.StepLR", "--lr_scheduler.step_size=2"],
            ["--lr_scheduler (top level) is not used", "--model.lr_scheduler"],
        ),
        (
            ["--optimizer=torch.optim.SGD", "--optimizer.lr=0.1"],
            ["--optimizer", "--model.optimizer"],
        ),
    ],
    ids=["batch_size", "eval_batch_size", "max_epochs", "time_budget", "lr_scheduler", "optimizer"],
)
def test_a_value_that_cannot_be_used_is_refused_before_a_run_begins(
    args: list[str], names: list[str], tmp_path: Path
) -> None:
    """Exit status 2, as for a misspelled key, and no run folder left behind: the run never
    began. (A time budget of 0 used to train the whole schedule; a top-level --lr_scheduler was
    saved in the config and changed nothing; the others printed a traceback.)"""
    error_line(command(*SYNTHETIC, *args, f"--run.root={tmp_path}"), 2, *names)
    assert not list(tmp_path.glob("*/*")), list(tmp_path.rglob("*"))


def test_unknown_command_lists_every_command(tmp_path: Path) -> None:
    done = command("-m", "litforge.testing", "fitt", f"--run.root={tmp_path}")
    line = error_line(done, 2, "'fitt'", "did you mean fit?")
    for name in (
        "fit",
        "validate",
        "test",
        "predict",
        "runs",
        "sweep",
        "repeat",
        "prepare",
        "export",
        "serve",
    ):
        assert name in line, line
    line = error_line(command("-m", "litforge.testing"), 2)
    assert line.startswith("error: no command given: the commands are fit, validate"), line


def test_a_config_of_another_project_is_named_as_such(
    synthetic_checkpoint: Path, tmp_path: Path
) -> None:
    """The synthetic task's config.yaml given to the template: one line saying whose config it
    is, not the first of its keys the template does not know; for a file without the first line
    that names its project (written by hand, or before), all the keys the template does not
    take, at once."""
    saved = synthetic_checkpoint.parent.parent / "config.yaml"
    assert saved.read_text().startswith("# litforge project: synthetic")
    template = ["-m", "template_project", "fit", *QUIET, f"--run.root={tmp_path / 'runs'}"]
    line = error_line(command(*template, f"--config={saved}"), 2, str(saved), "synthetic")
    assert "saved by the project synthetic" in line and "not by template" in line, line
    unnamed = tmp_path / "unnamed.yaml"
    unnamed.write_text(saved.read_text().split("\n", 1)[1])
    line = error_line(command(*template, f"--config={unnamed}"), 2, str(unnamed))
    assert "do not take" in line and "model.dropout" in line and "another project" in line, line
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- broken checkpoints
@pytest.mark.parametrize("damage", ["empty", "cut short"])
def test_a_damaged_checkpoint_is_named(
    damage: str, synthetic_checkpoint: Path, tmp_path: Path
) -> None:
    """A zero-byte file (a write that never began) and one cut in the middle (a copy that
    stopped): named, before anything is written; the checkpoints beside it are listed."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    data = synthetic_checkpoint.read_bytes()
    (folder / "best-epoch000-step1.ckpt").write_bytes(data)
    bad = folder / "last.ckpt"
    bad.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    done = command(*SYNTHETIC, f"--ckpt_path={bad}", f"--run.root={tmp_path / 'runs'}")
    line = error_line(done, 1, str(bad), damage, "best-epoch000-step1.ckpt")
    assert "OSError" not in line and "EOFError" not in line, line
    assert not (tmp_path / "runs").exists()


def test_a_resume_that_fails_changes_no_file_of_the_run(
    synthetic_checkpoint: Path, tmp_path: Path
) -> None:
    """The printed resume command with a wrong value added, twice: a checkpoint of another
    width (fails when the checkpoint is loaded) and a batch of 0 (fails when the data module
    is built). Neither changes a file of the run: config.yaml (the printed command keeps
    working), the checkpoint, the CSV log, status.json."""
    run = Path(shutil.copytree(synthetic_checkpoint.parent.parent, tmp_path / "run"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert run / "config.yaml" in before and run / "checkpoints" / "last.ckpt" in before
    # the printed command: the run's folder is the checkpoint's
    resume = [*SYNTHETIC, f"--config={run / 'config.yaml'}"]
    resume += [f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    error_line(command(*resume, "--model.width=32"), 1, "does not fit", "--model settings")
    error_line(command(*resume, "--data.batch_size=0"), 2, "--data.batch_size=0")
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert [p for p in before if before[p] != after[p]] == []
    assert command(*resume).returncode == 0  # the printed command still resumes


def test_a_new_fit_goes_to_a_new_folder_not_over_a_run(
    synthetic_checkpoint: Path, tmp_path: Path
) -> None:
    """``fit --config <run>/config.yaml`` runs the settings again in a new folder (the saved
    config leaves run.dir empty); pointing a new fit at the run's folder is refused with the
    command that resumes it. The run's files are left as they were."""
    run = Path(shutil.copytree(synthetic_checkpoint.parent.parent, tmp_path / "run"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    config = run / "config.yaml"
    line = error_line(command(*SYNTHETIC, f"--config={config}", f"--run.dir={run}"), 2, str(run))
    assert (
        "holds a run already" in line and f"--ckpt_path {run / 'checkpoints' / 'last.ckpt'}" in line
    )
    again = command(*SYNTHETIC, f"--config={config}", f"--run.root={tmp_path / 'runs'}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((tmp_path / "runs" / "synthetic").iterdir())) == 1  # a new folder
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------- cifar10's folders
def test_empty_data_folder_is_said_to_be_empty(tmp_path: Path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    done = command(*CIFAR10, f"--data.root={empty}", f"--data.url={url}", f"--run.root={tmp_path}")
    line = error_line(done, 1, f"the data folder {empty} is empty", "train/", "test/")
    assert line.index("is empty") < line.index("could not download"), line


def test_train_and_test_with_other_classes_are_refused(image_copy: Path, tmp_path: Path) -> None:
    """train: class0..class9; test: class3 renamed classX. Each split labelled by its own
    sorted list, test's classX would get the label of train's class4 without a word."""
    (image_copy / "test" / "class3").rename(image_copy / "test" / "classX")
    done = command(*CIFAR10, f"--data.root={image_copy}", f"--run.root={tmp_path / 'runs'}")
    error_line(
        done,
        1,
        f"only in {image_copy / 'train'}: class3",
        f"only in {image_copy / 'test'}: classX",
        "the same class folders",
    )


@pytest.mark.parametrize("n_classes", [1, 3, 11])
def test_cifar10_sizes_its_head_to_the_class_folders(
    n_classes: int, image_copy: Path, tmp_path: Path
) -> None:
    """The demo on a folder of 1, 3 or 11 classes (the tiny folder has 10): at least 2 are
    needed; otherwise the head has one output per class folder (it was 10 whatever the data,
    and 11 classes failed after training began)."""
    for split in ("train", "test"):
        folder = image_copy / split
        for c in range(n_classes, 10):
            shutil.rmtree(folder / f"class{c}")
        if n_classes == 11:
            shutil.copytree(folder / "class0", folder / "class10")
    done = command(*CIFAR10, f"--data.root={image_copy}", f"--run.root={tmp_path / 'runs'}")
    if n_classes == 1:
        error_line(done, 1, str(image_copy / "train"), "1 class folder (class0)", "at least 2")
        return
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"num_classes={n_classes}" in done.stdout + done.stderr
