"""What serving costs: requests/s and latency of ``python -m <project> serve`` (LitServe,
batching concurrent requests) against calling the model in a plain loop, side by side, in one run.

    make bench-serve                                         # the template, 200 requests
    make bench-serve ARGS="--requests 400 --concurrency 32"
    .venv/bin/python scripts/bench_serve.py --ckpt_path runs/template/<run>

Without ``--ckpt_path``, the template is trained for one epoch into a temporary folder first
(its accuracy does not matter here: the network's size does). The inputs are the same
``--requests`` made-up 16 x 16 PNG images (the template's size) for every row:

    plain loop        ``predictor.predict([image])`` for each, one after the other, in this
                      process: the model with no HTTP, no batching (the floor of a request's
                      latency)
    plain loop, batch ``predictor.predict(images)`` in batches of ``--max-batch``: the ceiling
                      of throughput without a server
    server, 1 client  one request at a time over HTTP (each pays HTTP, JSON and base64)
    server, N clients ``--concurrency`` threads sending at once, a bounded number of requests in
                      all: LitServe batches what arrives together (up to ``--max-batch``)

Every request goes to 127.0.0.1 only, with a timeout; the server is stopped at the end, whatever
happens. Latency is per call (per request), p50 and p99 over all of them; requests/s is the
count over the wall time of the row. Not a test: a figure to read, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def cpu_flags() -> str:
    """The CPU's model name and the vector units that matter for its speed."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"model name\s*:\s*(.*)", text)
    flags = sorted(set(re.findall(r"\b(avx2|avx512_bf16|amx\w*)\b", text)))
    return f"{name.group(1).strip() if name else 'unknown CPU'} ({' '.join(flags) or 'no avx2'})"


def train_template(folder: Path) -> Path:
    """One epoch of the template (its default network and image size): the run folder."""
    command = [sys.executable, "-m", "template_project", "fit", f"--run.dir={folder / 'run'}"]
    command += ["--trainer.max_epochs=1", "--run.loggers=[csv]", "--trainer.callbacks=[]"]
    command += ["--data.n_train=512", "--data.n_test=128", "--data.val_size=128"]
    command += ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=900)
    return folder / "run"


def timed(calls: Sequence[Callable[[], object]], workers: int) -> tuple[float, list[float]]:
    """Runs ``calls`` on ``workers`` threads; returns the wall time and each call's latency."""

    def one(call: Callable[[], object]) -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    start = time.perf_counter()
    if workers == 1:
        latencies = [one(c) for c in calls]
    else:
        with ThreadPoolExecutor(workers) as pool:
            latencies = list(pool.map(one, calls))
    return time.perf_counter() - start, latencies


def row(name: str, items: int, wall: float, latencies: list[float]) -> str:
    ms = np.array(latencies) * 1000
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    return f"{name:<34} {items / wall:>10.1f} {p50:>9.2f} {p99:>9.2f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes) -> dict[str, object]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", help="a checkpoint or run folder (default: train one)")
    parser.add_argument("--requests", type=int, default=200, help="per row (default: 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once (16)")
    parser.add_argument("--max-batch", type=int, default=16, help="the server's batch (16)")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 5000 or not 1 <= args.concurrency <= 64:
        parser.error("--requests must lie in [1, 5000] and --concurrency in [1, 64]")

    import litforge

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        source = Path(args.ckpt_path) if args.ckpt_path else train_template(Path(tmp))
        predictor = litforge.load(source)
        h, w = predictor.data.image_size
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.requests)]
        bodies = []
        for pixels in images:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            bodies.append(json.dumps({"image": base64.b64encode(buffer.getvalue()).decode()}))

        print(f"bench-serve: {args.requests} requests of one {h} x {w} PNG image each, model")
        print(f"  {type(predictor.model).__name__} from {predictor.checkpoint}")
        print(f"  CPU: {cpu_flags()}, {os.cpu_count()} cores visible")
        print(f"  torch threads {os.environ.get('OMP_NUM_THREADS', 'default')} (OMP_NUM_THREADS)")
        print(f"{'':<34} {'requests/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
        predictor.predict(images[:2])  # warm-up
        wall, lat = timed([partial(predictor.predict, [x]) for x in images], 1)
        print(row("plain loop, one at a time", len(images), wall, lat), flush=True)
        batches = [images[i : i + args.max_batch] for i in range(0, len(images), args.max_batch)]
        wall, lat = timed([partial(predictor.predict, b) for b in batches], 1)
        name = f"plain loop, batches of {args.max_batch}"
        print(row(name, len(images), wall, lat) + "  (latency per batch)", flush=True)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = ["-m", "template_project", "serve", f"--ckpt_path={source}", f"--port={port}"]
        log = open(Path(tmp) / "serve.log", "w")  # noqa: SIM115 (closed in finally)
        server = subprocess.Popen(
            [sys.executable, *command, f"--max_batch_size={args.max_batch}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"the server did not start: {(Path(tmp) / 'serve.log').read_text()[-2000:]}"
                    )
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                        if answer.read() == b"ok":
                            break
                except OSError:
                    time.sleep(0.5)
            encoded = [b.encode() for b in bodies]
            for body in encoded[:4]:  # warm-up
                post(f"{url}/predict", body)
            calls = [partial(post, f"{url}/predict", b) for b in encoded]
            wall, lat = timed(calls, 1)
            print(row("server, 1 client", len(calls), wall, lat), flush=True)
            wall, lat = timed(calls, args.concurrency)
            print(row(f"server, {args.concurrency} clients at once", len(calls), wall, lat))
            answer = post(f"{url}/predict", encoded[0])
            (alone,) = predictor.predict([images[0]])
            assert answer["prediction"] == alone["prediction"], (answer, alone)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()
    print("The machine may be shared: read the rows against each other, not as absolutes.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
