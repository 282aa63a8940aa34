"""Messages for what a user typed wrong: one line that names the key, value or file at fault.

Used by LitforgeCLI before anything is written: a --ckpt_path that is not there, a config file
that is not YAML, a misspelled key (with the closest real one), a checkpoint of another model.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from litforge.errors import MissingCheckpointError, one_line

SUBCOMMANDS = ("fit", "validate", "test", "predict")
# What --ckpt_path may name besides a file: Lightning's own choices, and remote paths.
CKPT_KEYWORDS = ("last", "best", "hpc", "registry")


def check_ckpt_path(ckpt_path: str | None) -> None:
    """A --ckpt_path that names a local file that is not there: MissingCheckpointError."""
    if not ckpt_path or ckpt_path in CKPT_KEYWORDS or ckpt_path.startswith("registry:"):
        return
    if "://" not in str(ckpt_path) and not Path(ckpt_path).is_file():
        what = "a folder, not a file" if Path(ckpt_path).is_dir() else "not there"
        raise MissingCheckpointError(f"the checkpoint {ckpt_path} (--ckpt_path) is {what}")


def state_dict_mismatch(message: str) -> str:
    """torch's load_state_dict error, counted: 'N missing keys (a, b, ...), M unexpected ...'."""
    parts = []
    for label, name in (("missing", "Missing"), ("unexpected", "Unexpected")):
        found = re.search(rf"{name} key\(s\) in state_dict: (.*)", message)
        if found:
            keys = re.findall(r'"([^"]+)"', found.group(1))
            more = ", ..." if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {label} keys ({', '.join(keys[:3])}{more})")
    shapes = re.findall(r"size mismatch for ([^:]+):", message)
    if shapes:
        more = ", ..." if len(shapes) > 3 else ""
        parts.append(f"{len(shapes)} of another shape ({', '.join(shapes[:3])}{more})")
    return ", ".join(parts) or one_line(message, limit=300)


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
                yaml.safe_load(f)
        except yaml.YAMLError as err:
            return f"the config file {name} is not valid YAML: {one_line(str(err))}"
        except OSError:
            continue  # jsonargparse's own message says it
    return None


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
