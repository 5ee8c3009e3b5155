#!/usr/bin/env python3
"""Serve basin's reference ONNX models through NVIDIA Triton Inference Server (via PyTriton).

One Triton model per ONNX file in the model directory (default ``.cache/models``, built by
scripts/build-models.sh); the Triton model name is the file stem (``resnet18``, ``bert6``,
``digits_small``, ...), version 1. Each model is a PyTriton Python callable that runs ONNX
Runtime (CPU execution provider unless ``--cuda``), wrapped in ``@batch`` so Triton's dynamic
batcher concatenates queued requests along the first dimension. Inputs and outputs keep the
ONNX names (``input`` -> ``probs`` / ``logits``; ``input_ids`` + ``attention_mask`` ->
``logits``), with the batch dimension left out of the Triton shapes (``max_batch_size > 0``).

The dynamic batcher is configured from the command line, the same knobs basin's simulated
batcher has (Triton model_config.proto ``dynamic_batching``): ``--max-batch-size``,
``--max-queue-delay-us`` (``max_queue_delay_microseconds``), ``--preferred-batch-sizes`` and
``--instances`` (model instances = parallel callables, each with its own ONNX Runtime session).

All endpoints bind to 127.0.0.1. PyTriton protects some Triton APIs with a random access
token; statistics (``GET /v2/models/<name>/stats``) are left open here so that clients can
read Triton's queue/compute durations, the rest (model repository, shared memory, trace,
logging) stays protected. Triton reports ``/v2/health/ready`` as soon as the server is up,
before PyTriton has loaded the models; ``--ready-file`` names a file written (model names, one
a line) once every model is loaded. The script blocks until SIGINT/SIGTERM (Ctrl+C); use
scripts/start-triton.sh / scripts/stop-triton.sh to run it in the background.

Example KServe v2 request (HTTP/JSON)::

    curl -s localhost:8000/v2/models/digits_small/infer -H 'Content-Type: application/json' \
      -d '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[0,...]}]}'
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig

REPO = Path(__file__).resolve().parent.parent
LOG = logging.getLogger("basin.triton")

# ONNX Runtime type strings -> numpy dtypes accepted by PyTriton's Tensor spec.
ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
              "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(uint8)": np.uint8}


def make_session(path: Path, args: argparse.Namespace) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if args.ort_threads > 0:
        opts.intra_op_num_threads = args.ort_threads
    opts.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if args.cuda \
        else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), opts, providers=providers)


def tensor_specs(values) -> list[Tensor]:
    """Triton tensor specs from ONNX Runtime NodeArgs, dropping the (dynamic) batch dim."""
    specs = []
    for v in values:
        if v.type not in ORT_DTYPES:
            raise SystemExit(f"triton_server: unsupported ONNX type {v.type} for {v.name}")
        shape = tuple(d if isinstance(d, int) else -1 for d in v.shape[1:])
        specs.append(Tensor(name=v.name, dtype=ORT_DTYPES[v.type], shape=shape))
    return specs


def make_infer_fn(sess: ort.InferenceSession):
    """A PyTriton callable: batched numpy inputs by name -> outputs by name."""
    output_names = [o.name for o in sess.get_outputs()]
    input_types = {i.name: ORT_DTYPES[i.type] for i in sess.get_inputs()}

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=input_types[k]) for k, v in inputs.items()}
        return dict(zip(output_names, sess.run(output_names, feed)))

    return infer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_dir = Path(os.environ.get("BASIN_CACHE", REPO / ".cache")) / "models"
    ap.add_argument("--model-dir", type=Path, default=default_dir)
    ap.add_argument("--models", nargs="+", default=None,
                    help="subset of model names (file stems; commas also accepted); default all")
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-queue-delay-us", type=int, default=500,
                    help="dynamic batcher max_queue_delay_microseconds (0 = no waiting)")
    ap.add_argument("--preferred-batch-sizes", type=int, nargs="*", default=[],
                    help="dynamic batcher preferred_batch_size list (default none)")
    ap.add_argument("--instances", type=int, default=1,
                    help="model instances per model (each its own ONNX Runtime session)")
    ap.add_argument("--ort-threads", type=int, default=0,
                    help="ONNX Runtime intra-op threads per session (0 = ORT default)")
    ap.add_argument("--cuda", action="store_true",
                    help="prefer ONNX Runtime's CUDA provider (needs onnxruntime-gpu)")
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose")
    ap.add_argument("--ready-file", type=Path, default=None,
                    help="write the served model names here once all models are loaded")
    args = ap.parse_args(argv)
    if args.models:
        args.models = [m for item in args.models for m in item.split(",") if m]
    if args.max_batch_size < 1 or args.instances < 1 or args.max_queue_delay_us < 0:
        ap.error("--max-batch-size and --instances must be >= 1, --max-queue-delay-us >= 0")
    bad = [b for b in args.preferred_batch_sizes if not 1 <= b <= args.max_batch_size]
    if bad:
        ap.error(f"--preferred-batch-sizes {bad} outside 1..--max-batch-size")
    return args


def _interrupt(signum, frame):  # SIGTERM -> the same clean shutdown as Ctrl+C
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A shell starting us in the background (`cmd &` without job control) sets SIGINT to
    # SIG_IGN, which Python keeps; restore Ctrl+C semantics so SIGINT shuts down cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    available = sorted(p.stem for p in args.model_dir.glob("*.onnx"))
    if not available:
        raise SystemExit(f"triton_server: no .onnx files in {args.model_dir} "
                         "(run scripts/build-models.sh)")
    names = args.models or available
    missing = sorted(set(names) - set(available))
    if missing:
        raise SystemExit(f"triton_server: unknown model(s) {missing}; available: {available}")

    config = TritonConfig(
        http_address="127.0.0.1", http_port=args.http_port,
        grpc_address="127.0.0.1", grpc_port=args.grpc_port,
        metrics_address="127.0.0.1", metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
    )
    batcher = DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us,
                             preferred_batch_size=args.preferred_batch_sizes or None)
    security = TritonSecurityConfig(
        restricted_endpoints=[e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"])
    if args.ready_file:
        args.ready_file.unlink(missing_ok=True)
    with Triton(config=config, security_config=security) as triton:
        for name in names:
            path = args.model_dir / f"{name}.onnx"
            sessions = [make_session(path, args) for _ in range(args.instances)]
            triton.bind(
                model_name=name,
                infer_func=[make_infer_fn(s) for s in sessions],
                inputs=tensor_specs(sessions[0].get_inputs()),
                outputs=tensor_specs(sessions[0].get_outputs()),
                config=ModelConfig(max_batch_size=args.max_batch_size, batcher=batcher),
                strict=True,
            )
            LOG.info("bound %s (%d instance(s), inputs %s, outputs %s)", name, args.instances,
                     [i.name for i in sessions[0].get_inputs()],
                     [o.name for o in sessions[0].get_outputs()])
        LOG.info("serving %s on http 127.0.0.1:%d grpc :%d metrics :%d; max_batch_size %d, "
                 "max_queue_delay_us %d, preferred %s", names, args.http_port, args.grpc_port,
                 args.metrics_port, args.max_batch_size, args.max_queue_delay_us,
                 args.preferred_batch_sizes)
        if args.ready_file:
            tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
            tmp.write_text("".join(f"{n}\n" for n in names))
            os.replace(tmp, args.ready_file)
        try:
            triton.serve()
        finally:
            if args.ready_file:
                args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
