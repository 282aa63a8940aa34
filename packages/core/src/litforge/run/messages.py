"""Messages for what a user typed wrong: one line that names the key, value or file at fault.

Used by LitforgeCLI before anything is written: a --ckpt_path that is not there, empty or cut
short, a config file that is not YAML or was saved by another project, a misspelled key (with
the closest real one), an unknown subcommand, a checkpoint of another model.
"""

from __future__ import annotations

import difflib
import re
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from litforge.errors import CheckpointError, MissingCheckpointError, SettingError, one_line
from litforge.run.arguments import init_parameters

SUBCOMMANDS = ("fit", "validate", "test", "predict")
# What ``python -m <project>`` runs besides the subcommands above (litforge.command).
OTHER_COMMANDS = ("runs", "sweep", "repeat", "prepare", "export", "serve")
# What --ckpt_path may name besides a file: Lightning's own choices, and remote paths.
CKPT_KEYWORDS = ("last", "best", "hpc", "registry")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (since torch 1.6)
PICKLE_MAGIC = b"\x80"  # ... and before it a pickle (its protocol byte first)
# The first line of a run's config.yaml (litforge.run.rundir): which project saved it.
PROJECT_MARK = "# litforge project: "


def check_ckpt_path(ckpt_path: str | None) -> None:
    """A --ckpt_path that names a local file that is not there, is empty, or is cut short (a
    zip archive without its end, which torch.save writes last): MissingCheckpointError /
    CheckpointError naming the file, before anything is written."""
    if not ckpt_path or ckpt_path in CKPT_KEYWORDS or ckpt_path.startswith("registry:"):
        return
    if "://" in str(ckpt_path):
        return
    path = Path(ckpt_path)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "not there"
        raise MissingCheckpointError(f"the checkpoint {ckpt_path} (--ckpt_path) is {what}")
    size = path.stat().st_size
    if size == 0:
        problem = "is empty (0 bytes)"
    else:
        with path.open("rb") as f:
            head = f.read(4)
        if head[:1] == PICKLE_MAGIC or (head == ZIP_MAGIC and zipfile.is_zipfile(path)):
            return  # whole, or an older torch.save's pickle: torch decides
        if head == ZIP_MAGIC:
            problem = f"is cut short ({size} bytes, without the end of the archive)"
        else:  # a text file, an image, ...: torch would advise weights_only=False
            problem = "is not a checkpoint (not a file torch.save writes)"
    others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path)[:3]
    instead = f"; others in {path.parent}: {', '.join(others)}" if others else ""
    raise CheckpointError(
        f"the checkpoint {ckpt_path} (--ckpt_path) {problem}: it cannot be loaded; "
        f"give another checkpoint{instead}"
    )


def state_dict_mismatch(message: str) -> str:
    """torch's load_state_dict error, counted: 'N missing keys (a, b, ...), M unexpected ...'."""
    found = {
        label: re.search(rf"{name} key\(s\) in state_dict: (.*)", message)
        for label, name in (("missing", "Missing"), ("unexpected", "Unexpected"))
    }
    keys = {k: re.findall(r'"([^"]+)"', m.group(1)) if m else [] for k, m in found.items()}
    shapes = re.findall(r"size mismatch for ([^:]+):", message)
    counted = count_mismatch(keys["missing"], keys["unexpected"], shapes)
    return counted or one_line(message, limit=300)


def count_mismatch(missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    """'N missing keys (a, b, ...), M unexpected keys (...), K of another shape (...)'."""
    parts = []
    kinds = (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("of another shape", shapes),
    )
    shown = 2 if sum(bool(names) for _, names in kinds) == 1 else 1  # the line stays short
    for label, names in kinds:
        if names:
            more = ", ..." if len(names) > shown else ""
            parts.append(f"{len(names)} {label} ({', '.join(names[:shown])}{more})")
    return ", ".join(parts)


def checkpoint_mismatch(model: Any, ckpt_path: str | None) -> str | None:
    """What keeps ``model`` from taking the weights of the checkpoint ``ckpt_path``, counted as
    ``state_dict_mismatch`` counts it, or None when they fit (or the file cannot say: a remote
    path, a keyword, a checkpoint without a state_dict). Checked before a resumed fit writes
    anything (status.json, the logs): Lightning's own check comes after its loggers started.
    Keys the model does not hold yet are not counted as unexpected (a model may build layers
    in ``setup``/``configure_model``), nor are lazy parameters; ``strict_loading=False`` skips
    it."""
    if not ckpt_path or ckpt_path in CKPT_KEYWORDS or "://" in str(ckpt_path):
        return None
    if not getattr(model, "strict_loading", True) or not Path(ckpt_path).is_file():
        return None
    import torch
    from torch.nn.parameter import UninitializedParameter

    try:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    weights = saved.get("state_dict") if isinstance(saved, dict) else None
    if not isinstance(weights, dict):
        return None
    own = {k: v for k, v in model.state_dict().items() if not isinstance(v, UninitializedParameter)}
    missing = [k for k in own if k not in weights]
    shapes = [
        k
        for k, v in own.items()
        if k in weights
        and hasattr(weights[k], "shape")
        and tuple(weights[k].shape) != tuple(v.shape)
    ]
    if not missing and not shapes:
        return None
    unexpected = [k for k in weights if k not in own]
    return count_mismatch(missing, unexpected, shapes)


def class_path_problem(message: str) -> str | None:
    """jsonargparse's error for a ``class_path`` that names no class, or an ``init_args`` key
    its class does not take (some 600 characters: every Union subtype it tried), as one short
    line: the key, the class and what is wrong, with the closest real name."""
    import importlib

    key = re.search(r'Parser key "([^"]+)"', message)
    found = re.search(r"Problem with given class_path '([^']+)': (.*?)(?: - |$)", message)
    if not found:
        return None
    where = f"--{key.group(1)}: " if key else ""
    path, problem = found.group(1), found.group(2).strip()
    module_name, _, name = path.rpartition(".")
    option = re.search(r"Option '([^']+)' is not accepted", problem)
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError:
        return f"{where}class_path {path}: no module {module_name}"
    if option and module is not None and hasattr(module, name):
        takes = sorted(init_parameters(getattr(module, name)))
        close = difflib.get_close_matches(option.group(1), takes, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (it takes {', '.join(takes[:8])})"
        return f"{where}{path} takes no argument {option.group(1)!r}{hint}"
    if module is not None and not hasattr(module, name):
        close = difflib.get_close_matches(name, [n for n in dir(module) if n[:1].isupper()], n=1)
        hint = f"; did you mean {module_name}.{close[0]}?" if close else ""
        return f"{where}class_path {path}: {module_name} has no {name}{hint}"
    return f"{where}class_path {path}: {one_line(problem, limit=120)}"


def config_files(argv: list[str]) -> list[str]:
    """The files given with --config / -c in ``argv``."""
    files = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def bad_yaml(argv: list[str]) -> str | None:
    """'<file> is not valid YAML: ...' for the first --config file that YAML cannot read."""
    for name in config_files(argv):
        try:
            with open(name) as f:
                loaded = yaml.safe_load(f)
        except yaml.YAMLError as err:
            return f"the config file {name} is not valid YAML: {one_line(str(err))}"
        except OSError:
            continue  # jsonargparse's own message says it
        if loaded is None:  # jsonargparse: "Unexpected config:"
            return f"the config file {name} is empty: give settings (key: value), or leave it out"
    return None


def union_problem(message: str) -> str | None:
    """jsonargparse's 300-character "Does not validate against any of the Union subtypes" for a
    plain value of the wrong type, as '--key=value: expected int or null'."""
    found = re.search(
        r'Parser key "([^"]+)": Does not validate against any of the Union subtypes '
        r"Subtypes: \[([^\]]*)\].*Given value: (.*?)$",
        message,
    )
    if not found or "class_path" in message:
        return None
    key, subtypes, value = found.groups()
    names = re.findall(r"<class '([\w.]+)'>", subtypes) or [subtypes]
    names = ["null" if n == "NoneType" else n.rsplit(".", 1)[-1] for n in names]
    return f"--{key}={value.strip()}: expected {' or '.join(names)}"


def did_you_mean(message: str, parser: Any, subcommand: str | None) -> str:
    """'; did you mean --trainer.max_epochs?' for an unrecognized --key close to a real one."""
    found = re.match(r"unrecognized arguments: (.*)", message)
    if not found:
        return ""
    actions = getattr(parser, "_subcommands_action", None)
    parsers = getattr(actions, "_name_parser_map", {})
    target = parsers.get(subcommand, parser)
    options = [s for action in target._actions for s in action.option_strings]
    close = []
    for arg in found.group(1).split():
        key = arg.split("=", 1)[0]
        if key.startswith("--"):
            close += difflib.get_close_matches(key, options, n=1, cutoff=0.8)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def unknown_subcommand(message: str) -> str | None:
    """jsonargparse's 'invalid choice' of a subcommand, listing every command of
    ``python -m <project>`` (its own four and runs, sweep, repeat), with the closest one."""
    commands = (*SUBCOMMANDS, *OTHER_COMMANDS)
    if re.search(r'expected "subcommand" to be one of .* but it was not provided', message):
        return f"no command given: the commands are {', '.join(commands)}"
    found = re.search(r"invalid choice: '([^']*)' \(choose from [^)]*\)", message)
    if not found or "argument subcommand" not in message:
        return None
    given = found.group(1)
    close = difflib.get_close_matches(given, commands, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown command '{given}': the commands are {', '.join(commands)}{hint}"


def saved_by(config_file: str | Path) -> str | None:
    """The project named on the first line of a run's config.yaml, if any."""
    try:
        with open(config_file) as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return first[len(PROJECT_MARK) :].strip() if first.startswith(PROJECT_MARK) else None


def _section_keys(section: Any) -> set[str]:
    if not isinstance(section, dict):
        return set()
    args = section.get("init_args", section)
    return set(args) if isinstance(args, dict) else set()


def foreign_config(
    argv: list[str], project: str, model_class: Any = None, datamodule_class: Any = None
) -> str | None:
    """'the config file X was saved by the project Y ...' for a --config file of another
    project: named on its first line (every run's config.yaml); for a file without it, with
    two or more model and data settings this project does not take, all of them at once."""
    for name in config_files(argv):
        saved = saved_by(name)
        if saved is not None and saved.split()[0] != project:
            return (
                f"the config file {name} was saved by the project {saved}, not by {project}: "
                "run it with that project's command, or give a config of this one"
            )
        if saved is not None:
            continue
        try:
            with open(name) as f:
                config = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(config, dict):
            continue
        unknown = []
        for key, cls in (("model", model_class), ("data", datamodule_class)):
            accepted = init_parameters(cls)
            if accepted:
                unknown += [f"{key}.{k}" for k in sorted(_section_keys(config.get(key)) - accepted)]
        if len(unknown) >= 2:  # all of them at once, not one per attempt
            shown = ", ".join(unknown[:8]) + (", ..." if len(unknown) > 8 else "")
            model = getattr(model_class, "__name__", "the model")
            data = getattr(datamodule_class, "__name__", "the data")
            return (
                f"the config file {name} has {len(unknown)} settings that {model} and {data} do "
                f"not take ({shown}): was it written for another project than {project}?"
            )
    return None


def check_top_level_optimizer(config: Any, module: str) -> None:
    """Refuses a top-level ``--optimizer`` or ``--lr_scheduler`` (LightningCLI's own keys): a
    litforge model configures its optimizer itself (``--model.optimizer``,
    ``--model.lr_scheduler``), and LightningCLI would ignore a scheduler given alone and replace
    the model's optimizer, groups and schedule, by one given alone. The keys stay in the parser,
    so that a saved config.yaml (which holds them as null) reads back."""
    given = [key for key in ("optimizer", "lr_scheduler") if config.get(key) is not None]
    if given:
        keys = " and ".join(f"--{key}" for key in given)
        instead = " and ".join(f"--model.{key}" for key in given)
        raise SettingError(
            f"{keys} (top level) is not used: the model configures its own optimizer; give "
            f"{instead} instead (python -m {module} fit --help lists the model's settings)"
        )


def check_trains_something(trainer: Any) -> None:
    """Refuses a fit of ``--trainer.max_steps=0`` or ``--trainer.max_epochs=0``: Lightning
    trains nothing, and the run then tests the weights as built, exit status 0."""
    for key in ("max_steps", "max_epochs"):
        if trainer.get(key) == 0:
            raise SettingError(
                f"--trainer.{key}=0: fit would train nothing; give a count above 0 (-1: no limit)"
            )


# What Lightning warns of when a validate, test or predict loads a fit's checkpoint: the fit's
# callbacks (checkpoints, interrupt saving, random state) are not needed to evaluate it.
EVALUATE_WARNINGS = (
    r".*callbacks used to create the checkpoint need to be provided",
    r".*The dirpath has changed from",
)
# ... and when a fit resumes into its own run folder, which holds its checkpoints, as it should.
RESUME_WARNINGS = (r"Checkpoint directory .* exists and is not empty",)


@contextmanager
def quiet_checkpoint_warnings(resume: bool = False) -> Iterator[None]:
    """Drops the warnings above, which a user can do nothing about, while it lasts: a resumed
    fit's (``resume``) or an evaluation's."""
    with warnings.catch_warnings():
        for message in RESUME_WARNINGS if resume else EVALUATE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def restricted_value(message: str) -> str | None:
    """jsonargparse's long message for a number outside its restriction (``PositiveFloat`` and
    the like, often inside a Union with None), as '--key=value: must be more than 0'."""
    found = re.search(
        r'Parser key "([^"]+)".*does not conform to restriction v(>=?)(-?[\d.]+)', message
    )
    value = re.search(r"Given value: (\S+)", message)
    if not found or not value:
        return None
    key, op, bound = found.groups()
    must = "more than" if op == ">" else "at least"
    none = " (or null: none)" if "NoneType" in message else ""
    return f"--{key}={value.group(1)}: must be {must} {bound}{none}"
