"""Serve a trained model over HTTP on LitServe, Lightning's serving library.

    python -m <project> serve --ckpt_path=<checkpoint or run folder> [--port=8000]
        [--host=127.0.0.1] [--max_batch_size=32] [--batch_timeout=0.005]

answers ``POST /predict`` with a JSON body holding one input, as ``litforge.load``'s predictor
reads it:

    {"image": "<a PNG or JPEG file, base64>"}       an image, of any size
    {"row": {"radius": 14.2, "texture": 20.1}}      a table's row: its columns by name
    {"text": "(()())"}                               a sequence
    {"input": <any JSON value>}                      what the data module's read_inputs takes

and returns the prediction as one JSON object: the row ``predictor.predict([input])`` gives (the
row ``predict`` writes to predictions.csv; a mask or an image as nested lists). Requests that
arrive together are batched (up to ``--max_batch_size``, waiting at most ``--batch_timeout``
seconds for a batch to fill) and go through the model in one call. A request that does not fit
(no JSON, a missing column, an image of other channels, an unreadable file) gets status 400 and
``{"detail": "<one line saying why>"}``, and the server goes on; a bad request never fails the
good ones batched with it. ``GET /health`` answers ``ok`` once the model is loaded.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import litserve
import torch

from litforge.data.arrays import Arrays
from litforge.errors import InputError, LitforgeError, SettingError, one_line
from litforge.run.project import Project

DEFAULT_PORT = 8000
MAX_BATCH_SIZE = 32
BATCH_TIMEOUT = 0.005  # seconds a batch waits to fill: a few ms of latency for a batched model
INPUT_KEYS = ("image", "row", "text", "input")
ONE_INPUT = (
    'send a JSON object with one key: {"image": "<PNG or JPEG file, base64>"}, '
    '{"row": {"column": value, ...}}, {"text": "..."} or {"input": ...}'
)


@dataclass(frozen=True)
class Refused:
    """A request that does not fit, and why (one line): answered 400, never predicted."""

    reason: str


def decode_input(body: Any) -> Any:
    """One request's JSON body -> one raw input, as the predictor's ``read_inputs`` takes it
    in a list: a PIL image (decoded from base64), a row (a dict of column -> value), a text, or
    any JSON value (``input``). Raises InputError, one line, for a body that holds none."""
    if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in INPUT_KEYS:
        raise InputError(
            f"the request body {one_line(json.dumps(body), 80)} is not one input: {ONE_INPUT}"
        )
    key, value = next(iter(body.items()))
    if key == "image":
        return _image(value)
    if key == "row" and (not isinstance(value, dict) or not value):
        raise InputError('"row" must be a JSON object of column -> value, e.g. {"age": 41}')
    if key == "text" and not isinstance(value, str):
        raise InputError(f'"text" must be a string, got {type(value).__name__}')
    return value


def _image(value: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(value, str):
        raise InputError(
            f'"image" must be a PNG or JPEG file in base64, got {type(value).__name__}'
        )
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError('"image" is not base64: encode the file (base64 -w0 image.png)') from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(
            f'"image" ({len(data)} bytes) is not an image file: {one_line(str(err), 100)}'
        ) from None
    return image


class PredictorAPI(litserve.LitAPI):
    """The LitServe API of a trained model: each worker loads the predictor from ``source`` (a
    checkpoint or run folder) in ``setup``. ``decode_request`` reads a JSON body as the
    predictor's inputs (``decode_input``, then ``predictor.inputs``), or a ``Refused``;
    ``predict`` runs the batch's inputs through the model in one call and makes each readable
    alone (its row is ``predictor.predict([input])``'s); ``encode_response`` answers a row as
    JSON, a refusal as status 400 with its reason.

    Args:
        source: the checkpoint or run folder.
        max_batch_size, batch_timeout: LitServe's batching of requests that arrive together.
    """

    def __init__(
        self,
        source: str,
        max_batch_size: int = MAX_BATCH_SIZE,
        batch_timeout: float = BATCH_TIMEOUT,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.source = source
        self.predictor: Any = None

    def setup(self, device: str) -> None:
        from litforge.run.use import load

        self.predictor = load(self.source, device=str(device))

    # No annotations on ``request`` and the response: LitServe makes FastAPI's types of them
    # (without: the body as JSON, any response)
    def decode_request(self, request, **kwargs: Any):
        """The JSON body as the predictor's inputs (``Arrays`` of one item), or ``Refused``."""
        try:
            return self.predictor.inputs([decode_input(request)])  # type: ignore[no-any-return]
        except LitforgeError as err:
            return Refused(one_line(str(err), limit=300))

    def batch(self, inputs: list[Any]) -> list[Any]:
        return list(inputs)  # predict joins them (Arrays of one input each)

    def predict(self, batch: list[Any], **kwargs: Any) -> list[Any]:
        out: list[Any] = list(batch)
        good = [i for i, x in enumerate(batch) if not isinstance(x, Refused)]
        if good:
            rows = predict_rows(self.predictor, [batch[i] for i in good])
            for i, row in zip(good, rows):
                out[i] = row
        return out

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output, **kwargs: Any):
        """A row as JSON; a refusal as status 400 and ``{"detail": reason}``."""
        if isinstance(output, Refused):
            from starlette.responses import JSONResponse

            return JSONResponse({"detail": output.reason}, status_code=400)
        return output


def predict_rows(predictor: Any, parts: Sequence[Arrays]) -> list[dict[str, Any]]:
    """The readable row of each of ``parts`` (inputs read one by one), as
    ``predictor.predict`` gives it for that input alone, with one pass of the model over all
    of them; JSON-ready (arrays as nested lists)."""
    common = set.intersection(*(set(p) for p in parts)) - {"id"}  # id: text of any length
    joined = Arrays(**{k: torch.cat([p[k] for p in parts]) for k in sorted(common)})
    prediction = predictor.outputs(joined)
    rows = []
    for i, part in enumerate(parts):
        (row,) = predictor.data.readable(part, prediction[i])
        rows.append({k: v.tolist() if hasattr(v, "tolist") else v for k, v in row.items()})
    return rows


def _json_middleware() -> type:
    """A Starlette middleware for the JSON bodies of POST requests, before they reach a worker:
    a body that is not JSON gets 400 and one line (LitServe would answer 500, "Internal server
    error"); a JSON body sent as a form (``curl -d`` without ``-H 'Content-Type:
    application/json'``) is read as JSON (LitServe would try to parse a form)."""
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse

    class JSONBodies(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            if request.method == "POST":
                body = await request.body()
                try:
                    json.loads(body)
                except ValueError as err:
                    reason = f"the request body is not JSON ({one_line(str(err), 100)})"
                    return JSONResponse({"detail": reason}, status_code=400)
                headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                request.scope["headers"] = [*headers, (b"content-type", b"application/json")]
            return await call_next(request)

    return JSONBodies


def example_data(predictor: Any) -> str:
    """curl's ``-d`` argument for one input of the predictor's kind, shell-quoted: an image
    file read by ``base64``, a row of the training means of the feature columns, a short text
    of the vocabulary's tokens."""
    data = predictor.data
    if hasattr(data, "image_size"):
        return '"{\\"image\\": \\"$(base64 -w0 image.png)\\"}"'
    vocabulary = getattr(data, "vocabulary", None)
    if vocabulary is not None:
        sep = " " if vocabulary.tokenize_mode == "words" else ""
        body: Any = {"text": sep.join(vocabulary.tokens[2:5])}
    elif getattr(data, "feature_names", None) is not None:
        names = list(data.feature_names)
        stats = getattr(data, "stats", {}) or {}
        means = stats["features"][0].tolist() if "features" in stats else [0.0] * len(names)
        body = {"row": {n: round(float(m), 3) for n, m in zip(names, means)}}
    else:
        body = {"input": "..."}
    return "'" + json.dumps(body).replace("'", "'\\''") + "'"


def serve_command(project: Project, argv: Sequence[str], module: str | None = None) -> int:
    """Parses ``argv`` (``--ckpt_path``, ``--port``, ``--host``, the batching), loads the
    model once to fail early on a bad checkpoint, prints where it listens and a curl line, and
    serves until Ctrl-C or SIGTERM. Returns the exit status."""
    name = module or project.name
    parser = _Parser(
        prog=f"python -m {name} serve",
        description="Serves the model on LitServe: POST /predict with one JSON input; "
        "GET /health. Requests that arrive together are predicted in one batch.",
    )
    parser.add_argument(
        "--ckpt_path", required=True, help="a checkpoint, or a run folder (its best)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "0.0.0.0", "::"],
        help="127.0.0.1 (default): this machine only; 0.0.0.0: every network",
    )
    parser.add_argument("--max_batch_size", type=int, default=MAX_BATCH_SIZE)
    parser.add_argument("--batch_timeout", type=float, default=BATCH_TIMEOUT, help="seconds")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args(list(argv))
    if not 1024 <= args.port <= 65535:
        raise SettingError(f"--port={args.port}: choose a port from 1024 to 65535")
    if args.max_batch_size < 1 or args.batch_timeout < 0:
        raise SettingError("--max_batch_size must be >= 1 and --batch_timeout >= 0")

    from litforge.run.use import load

    predictor = load(args.ckpt_path)  # here first: a bad checkpoint fails before any worker
    api = PredictorAPI(args.ckpt_path, args.max_batch_size, args.batch_timeout)
    server = litserve.LitServer(
        api,
        accelerator=args.accelerator,
        devices=1,
        workers_per_device=1,
        middlewares=[_json_middleware()],
    )
    url = f"http://{'127.0.0.1' if args.host != '::' else '[::1]'}:{args.port}"
    print(
        f"serving {predictor.checkpoint} at {url}/predict (POST one JSON input; ready when "
        f"GET {url}/health answers ok; Ctrl-C stops it)"
    )
    print(
        f"try: curl -s {url}/predict -H 'Content-Type: application/json' "
        f"-d {example_data(predictor)}",
        flush=True,
    )
    # SIGTERM as Ctrl-C: LitServer then stops its workers; in a process forked from this one
    # (the HTTP server), the default: it ends
    main_pid = os.getpid()

    def interrupt(signum: int, frame: Any) -> None:
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, interrupt)
    logging.getLogger("litserve").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server.run(
            host=args.host,
            port=args.port,
            num_api_servers=1,
            log_level="warning",
            generate_client_file=False,
        )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one ``error:`` line and exit status 2, as the other commands'."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        print(f"error: {message} ({self.prog} --help lists the settings)", file=sys.stderr)
        raise SystemExit(2)
