"""Launchers: run one child command (a trial or a seed) and return its exit status.

- ``process`` (default): a child process on this machine, its output in a log file, its own
  session (a Ctrl-C reaches the sweep, which stops the child with SIGTERM: Lightning then saves
  last.ckpt), told to die with its launcher (``litforge.run.handoff``).
- ``local`` / ``slurm``: a submitit job (LocalExecutor / SlurmExecutor) that runs the same
  command (pip extra ``litforge-core[slurm]``). On SLURM, the one requeue mechanism is
  Lightning's: the job asks SLURM for SIGUSR1 90 s before its time limit, Lightning's
  SLURMEnvironment saves a checkpoint in the run folder and requeues the job, and the requeued
  job runs the same command, which resumes from that checkpoint. submitit's own requeue is not
  used: the job function is not checkpointable and its signal (USR2) is never sent.

Each child's status: 0 finished, ``PRUNED_EXIT`` pruned, anything else failed; a child that
was stopped because the launcher was interrupted is reported through ``stop``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litforge.errors import LitforgeError
from litforge.run.handoff import parent_env

LAUNCHERS = ("process", "local", "slurm")
TERM_GRACE = 60.0  # seconds a stopped child has to save its checkpoint before SIGKILL


@dataclass
class Job:
    """A child command: ``python -m <module> fit ...``, extra environment, and its log file."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log: Path = Path("train.log")


def gpu_slots() -> list[str]:
    """The GPUs one worker each can take: CUDA_VISIBLE_DEVICES's list, else every GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_env(index: int, workers: int, slots: list[str]) -> dict[str, str]:
    """Worker ``index``'s environment: its GPU when there are GPUs; else, with several workers
    on one CPU, a share of the cores for torch's threads (unless OMP_NUM_THREADS is set):
    N runs of all-core threads on the same cores slow each other down many times over."""
    if slots:
        return {"CUDA_VISIBLE_DEVICES": slots[index % len(slots)]}
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    return {}


def run_command(args: list[str], env: dict[str, str], log: str) -> int:
    """Runs the child command to its end and returns its exit status (a submitit job's body).
    SIGUSR1 is for Lightning in the child (it requeues the job); this process ignores it."""
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    with open(log, "ab") as out:
        full_env = {**os.environ, **env, **parent_env()}
        child = subprocess.Popen(
            args, env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return child.wait()


class ProcessLauncher:
    def __init__(self) -> None:
        self.uses_gpu_slots = True

    def run(self, job: Job, stop: threading.Event) -> int:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "ab") as out:
            child = subprocess.Popen(
                job.args,
                env={**os.environ, **job.env, **parent_env()},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                while True:
                    try:
                        return _status(child.wait(timeout=0.5))
                    except subprocess.TimeoutExpired:
                        if stop.is_set():
                            break
                return _stop(child)
            except BaseException:
                _stop(child)
                raise


def _stop(child: subprocess.Popen[bytes]) -> int:
    child.terminate()  # SIGTERM: Lightning saves last.ckpt and exits
    try:
        return _status(child.wait(timeout=TERM_GRACE))
    except subprocess.TimeoutExpired:
        child.kill()
        return _status(child.wait())


def _status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says


class SubmititLauncher:
    """Each child as a submitit job: ``kind`` local (this machine) or slurm; ``parameters``
    go to ``AutoExecutor.update_parameters`` (e.g. slurm_partition, timeout_min, gpus_per_node)."""

    def __init__(self, kind: str, folder: Path, parameters: dict[str, Any]) -> None:
        try:
            import submitit
        except ImportError as err:
            raise LitforgeError(
                f"--launcher {kind} needs submitit: pip install 'litforge-core[slurm]'"
            ) from err
        self.uses_gpu_slots = kind == "local"
        self.executor = submitit.AutoExecutor(folder=folder, cluster=kind)
        params: dict[str, Any] = {"timeout_min": 24 * 60}
        if kind == "slurm":
            # SIGUSR1 before the time limit, for Lightning's requeue (see the module doc)
            params["slurm_additional_parameters"] = {"signal": "USR1@90"}
            params["gpus_per_node"] = 1
        params.update(parameters)
        self.executor.update_parameters(**params)

    def run(self, job: Job, stop: threading.Event) -> int:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        submitted = self.executor.submit(run_command, job.args, job.env, str(job.log))
        try:
            while not submitted.done():
                if stop.wait(1.0):
                    submitted.cancel(check=False)
                    return 128 + signal.SIGTERM
            return int(submitted.result())
        except BaseException as err:
            if not submitted.done():
                submitted.cancel(check=False)
            if isinstance(err, Exception):  # the job itself failed (submitit's error)
                with open(job.log, "a") as log:
                    log.write(f"\nsubmitit job {submitted.job_id} failed: {err}\n")
                return 1
            raise


def wait_for(threads: list[threading.Thread], stop: threading.Event) -> None:
    """Waits for the worker threads; on Ctrl-C or SIGTERM sets ``stop`` (each worker stops its
    child, which saves its checkpoint, and records it), waits for them again, and re-raises.
    Polls with sleep, not Thread.join: a KeyboardInterrupt inside join can mark a thread that
    is still running as finished (CPython 3.11), and the workers would be cut off."""
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
    except BaseException:
        stop.set()
        while any(t.is_alive() for t in threads):
            try:
                time.sleep(0.2)
            except KeyboardInterrupt:  # a second Ctrl-C: still let the children save
                continue
        raise


def make_launcher(kind: str, folder: Path, parameters: dict[str, Any]) -> Any:
    if kind == "process":
        if parameters:
            raise LitforgeError("--slurm settings need --launcher slurm or local")
        return ProcessLauncher()
    if kind in ("local", "slurm"):
        return SubmititLauncher(kind, folder, parameters)
    raise LitforgeError(f"--launcher {kind}: one of {', '.join(LAUNCHERS)}")


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]
