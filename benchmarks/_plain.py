"""The benchmarks' independent timer: a runtime's own API and a perf_counter loop, nothing of
hwofa's targets or timing routine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

OV_PRECISION = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
ROUNDS, ROUND_S, GAP_S = 9, 0.2, 0.3  # rounds spread over ~5 s: one burst of outside load cannot own the median


def plain_session(model: bytes | str, runtime: str, threads: int,
                  precision: str = "fp32") -> Callable[[np.ndarray], Any]:
    """`model` (ONNX bytes or a path) on the runtime's own API; the callable maps an input to outputs.
    OpenVINO gets an explicit precision hint (f32 for fp32: this CPU would run fp32 models in bf16)."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})
    if runtime == "openvino":
        import openvino as ov

        core = ov.Core()
        read = core.read_model(model) if isinstance(model, str) else core.read_model(model, b"")
        compiled = core.compile_model(read, "CPU", {"INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
                                                    "INFERENCE_NUM_THREADS": threads,
                                                    "PERFORMANCE_HINT": "LATENCY"})
        req = compiled.create_infer_request()
        return lambda x: req.infer({0: x})
    raise SystemExit(f"no independent timer for runtime '{runtime}'")


def time_calls(call: Callable[[], Any], runs: int) -> tuple[float, list[float]]:
    """200 warm-up calls, then ROUNDS rounds of >= runs/ROUNDS calls and >= ROUND_S seconds, GAP_S
    apart; the median of the round medians (ms) and the round medians (no canary, no disturbance test)."""
    for _ in range(200):
        call()
    rounds = []
    for _ in range(ROUNDS):
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < runs // ROUNDS or time.perf_counter() - start < ROUND_S:
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1e3)
        rounds.append(statistics.median(times))
        time.sleep(GAP_S)
    return statistics.median(rounds), rounds
