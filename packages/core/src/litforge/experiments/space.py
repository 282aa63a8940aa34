"""The sweep file, ``configs/sweeps/<name>.yaml`` in a project's package::

    metric: val/shapes/accuracy        # a key the model logs at validation (or test/... at the end)
    direction: maximize                # or minimize (both left out: the runs' monitored metric)
    n_trials: 5
    reduce: best                       # a trial's value: its best epoch (default) or its last
    sampler: {type: tpe, seed: 0}      # any optuna.samplers class by name, with its arguments
    pruner: {type: median, n_warmup_steps: 1}  # any optuna.pruners class; none: no pruning
    parameters:                        # config keys, as on the command line
      model.width: {type: int, low: 8, high: 32, step: 8}
      model.optimizer.init_args.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
      data.batch_size: {type: categorical, choices: [32, 64]}
    fixed:                             # the same for every trial
      trainer.max_epochs: 3

Without ``metric`` (and then without ``direction``) a sweep optimises what each run's best
checkpoint is chosen by: ``--run.monitor`` (default: the model's ``best_metric``), in its own
direction. The file then names no metric of one task, and holds whatever the task's data and
model become. ``load_sweep`` leaves both None; the sweep command fills them in before the study
opens (``litforge.experiments.command.monitored``).

Every mistake is reported with the file and the key at fault.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from litforge.errors import LitforgeError

KEYS = {"metric", "direction", "n_trials", "reduce", "sampler", "pruner", "parameters", "fixed"}
TYPES = ("float", "int", "categorical")


class SweepFileError(LitforgeError):
    """The sweep file is missing, unreadable or wrong: the message names the file and key. Exit
    status 2, as for any other config file that is wrong (docs/runs.md, "Faults and bad
    input")."""

    exit_status = 2


@dataclass
class Sweep:
    """A sweep file, read and checked. ``metric`` and ``direction`` are None when the file names
    none: the runs' monitored metric, which the sweep command finds and sets
    (``with_objective``) before the study opens."""

    name: str
    path: Path
    metric: str | None
    direction: str | None
    n_trials: int
    parameters: dict[str, dict[str, Any]]
    sampler: dict[str, Any] = field(default_factory=lambda: {"type": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "nop"})
    fixed: dict[str, Any] = field(default_factory=dict)
    reduce: str = "best"

    @property
    def objective(self) -> tuple[str, str]:
        """(metric, direction) of the study; the file's, or the monitored ones filled in."""
        if self.metric is None or self.direction is None:
            raise LitforgeError(f"{self.path}: the sweep's metric is not known yet (monitored)")
        return self.metric, self.direction

    def with_objective(self, metric: str, direction: str) -> Sweep:
        """This sweep with the metric and direction of a file that names none."""
        return replace(self, metric=metric, direction=direction)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's values of every parameter, asked of Optuna's trial."""
        values = {}
        for key, p in self.parameters.items():
            if p["type"] == "categorical":
                values[key] = trial.suggest_categorical(key, p["choices"])
            elif p["type"] == "int":
                values[key] = trial.suggest_int(
                    key, p["low"], p["high"], step=p.get("step", 1), log=p.get("log", False)
                )
            else:
                values[key] = trial.suggest_float(
                    key, p["low"], p["high"], step=p.get("step"), log=p.get("log", False)
                )
        return values

    def make_sampler(self, offset: int = 0) -> Any:
        """The sampler; a seeded one gets ``seed + offset``. The sweep makes one per trial with
        offset = the trial's number: a resumed sweep, or several processes sharing the study,
        then draw new values, not the first run's again."""
        import optuna

        spec = dict(self.sampler)
        if isinstance(spec.get("seed"), int):
            spec["seed"] += offset
        return _construct(optuna.samplers, "Sampler", spec, self.path, "sampler")

    def make_pruner(self) -> Any:
        return make_pruner(self.pruner, self.path)


def make_pruner(spec: dict[str, Any], path: Path | str = "the sweep file") -> Any:
    import optuna

    return _construct(optuna.pruners, "Pruner", spec, Path(path), "pruner")


def _construct(module: Any, suffix: str, spec: dict[str, Any], path: Path, key: str) -> Any:
    """``{type: tpe, seed: 0}`` -> ``optuna.samplers.TPESampler(seed=0)``; any class by name."""
    kwargs = dict(spec)
    name = str(kwargs.pop("type", "")).lower().removesuffix(suffix.lower()).replace("_", "")
    if name == "none":
        name = "nop"
    classes = {
        c.lower().removesuffix(suffix.lower()): c
        for c in dir(module)
        if c.endswith(suffix) and not c.startswith("Base")
    }
    if name not in classes:
        raise SweepFileError(
            f"{path}: {key}.type: {spec.get('type')!r} is not an Optuna {suffix.lower()}; "
            f"one of: {', '.join(sorted(classes))}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" notices of some of Optuna's classes
            return getattr(module, classes[name])(**kwargs)
    except (TypeError, ValueError) as err:
        raise SweepFileError(f"{path}: {key}: {classes[name]} refused {kwargs}: {err}") from err


def cli_value(value: Any) -> str:
    """A value as the command line takes it: strings as they are, the rest as JSON (YAML)."""
    return value if isinstance(value, str) else json.dumps(value)


def cli_args(values: dict[str, Any]) -> list[str]:
    return [f"--{key}={cli_value(value)}" for key, value in values.items()]


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """``{"model.width": 16}`` -> ``{"model": {"width": 16}}``: a config file's shape."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def find_sweep(name: str, package_dir: Path) -> Path:
    """A sweep by name in ``<package>/configs/sweeps/``, or a path to a sweep file."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise SweepFileError(f"no sweep file {path}")
        return path
    folder = package_dir / "configs" / "sweeps"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise SweepFileError(
            f"no sweep {name!r}: no file {path}; "
            + (f"sweeps here: {', '.join(known)}" if known else f"add one under {folder}")
        )
    return path


def _number(value: Any, where: str) -> float:
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepFileError(f"{where}: {value!r} is not a number")
    return value


def _parameter(spec: Any, where: str) -> dict[str, Any]:
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict):
        raise SweepFileError(f"{where}: give {{type: float|int|categorical, ...}} or a list")
    p = dict(spec)
    kind = p.get("type")
    if kind not in TYPES:
        raise SweepFileError(f"{where}.type: {kind!r}; one of {', '.join(TYPES)}")
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    )
    unknown = set(p) - allowed
    if unknown:
        raise SweepFileError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} for {kind}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    if kind == "categorical":
        choices = p.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepFileError(f"{where}.choices: a non-empty list is needed")
        bad = [c for c in choices if not isinstance(c, (str, int, float, bool)) and c is not None]
        if bad:
            raise SweepFileError(f"{where}.choices: {bad[0]!r}: only numbers, strings, booleans")
        return p
    for bound in ("low", "high"):
        if bound not in p:
            raise SweepFileError(f"{where}: {bound} is missing")
        p[bound] = _number(p[bound], f"{where}.{bound}")
    if "step" in p:
        p["step"] = _number(p["step"], f"{where}.step")
    if kind == "int":
        for k in ("low", "high", "step"):
            if k in p and p[k] != int(p[k]):
                raise SweepFileError(f"{where}.{k}: {p[k]} is not a whole number")
            if k in p:
                p[k] = int(p[k])
    if p["low"] >= p["high"]:
        raise SweepFileError(f"{where}: low ({p['low']}) must be below high ({p['high']})")
    if not isinstance(p.get("log", False), bool):
        raise SweepFileError(f"{where}.log: true or false")
    if p.get("log") and p["low"] <= 0:
        raise SweepFileError(f"{where}: log needs low > 0, not {p['low']}")
    if p.get("log") and p.get("step") is not None and kind == "float":
        raise SweepFileError(f"{where}: log and step cannot go together")
    return p


def load_sweep(path: Path, n_trials: int | None = None) -> Sweep:
    """Reads and checks a sweep file; ``n_trials`` (from ``--trials``) overrides the file's."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SweepFileError(f"{path}: cannot read it: {err}") from err
    if not isinstance(data, dict):
        raise SweepFileError(f"{path}: a mapping of {', '.join(sorted(KEYS))} is needed")
    unknown = set(data) - KEYS
    if unknown:
        raise SweepFileError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(KEYS))}"
        )
    for key in ("n_trials", "parameters"):
        if key not in data:
            raise SweepFileError(f"{path}: {key} is missing")
    metric, direction = data.get("metric"), data.get("direction")
    if metric is None and direction is not None:
        raise SweepFileError(
            f"{path}: direction: {direction!r} without a metric; give both, or neither (the "
            "runs' monitored metric, in its own direction)"
        )
    if metric is not None:
        if not isinstance(metric, str) or metric.split("/")[0] not in ("val", "test"):
            raise SweepFileError(
                f"{path}: metric: {metric!r}; a logged key, e.g. val/<data>/accuracy (or no "
                "metric: the runs' monitored one)"
            )
        if direction is None:
            raise SweepFileError(f"{path}: direction is missing (minimize or maximize)")
        if direction not in ("minimize", "maximize"):
            raise SweepFileError(f"{path}: direction: {direction!r}; minimize or maximize")
    trials = data["n_trials"] if n_trials is None else n_trials
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SweepFileError(f"{path}: n_trials: {trials!r}; a whole number >= 1")
    reduce = data.get("reduce", "best")
    if reduce not in ("best", "last"):
        raise SweepFileError(f"{path}: reduce: {reduce!r}; best or last")
    params = data["parameters"]
    if not isinstance(params, dict) or not params:
        raise SweepFileError(f"{path}: parameters: a mapping of config keys is needed")
    parameters = {str(k): _parameter(v, f"{path}: parameters.{k}") for k, v in params.items()}
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SweepFileError(f"{path}: fixed: a mapping of config keys to values is needed")
    for key in ("run.dir", "run.wandb_group"):
        if key in parameters or key in fixed:
            raise SweepFileError(f"{path}: {key} is set by the sweep itself")
    both = set(parameters) & set(fixed)
    if both:
        raise SweepFileError(f"{path}: {', '.join(sorted(both))} both swept and fixed")
    sweep = Sweep(
        name=path.stem,
        path=path,
        metric=metric,
        direction=direction,
        n_trials=trials,
        parameters=parameters,
        fixed={str(k): v for k, v in fixed.items()},
        reduce=reduce,
    )
    for key in ("sampler", "pruner"):
        spec = data.get(key)
        if spec is None:
            continue
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or "type" not in spec:
            raise SweepFileError(f"{path}: {key}: give {{type: <name>, <argument>: ...}}")
        setattr(sweep, key, spec)
    sweep.make_sampler()  # fail now, naming the file, rather than in the first trial
    sweep.make_pruner()
    return sweep
