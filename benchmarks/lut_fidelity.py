"""Does a LUT hold? Build it (quietly, or under bursty load with --disturb), then check it on
fresh random subnets (a seed the calibration never used) with an independent timer.

The independent timer shares nothing with hwofa's timing routine: each subnet is exported,
loaded with the runtime's own Python API (onnxruntime.InferenceSession, or openvino.Core with
the f32 hint), and timed in `--rounds` short rounds of `--round-s` seconds, interleaved over
all subnets in a random order; its figure is the lowest round median. It runs with no load
of ours (after the disturbance has stopped), twice, to show how well the timer agrees with
itself: no table can agree with it better than that.

    python benchmarks/lut_fidelity.py --device cpu-onnxruntime --subnets 50 --builds 3
    python benchmarks/lut_fidelity.py --device cpu-onnxruntime --subnets 50 --builds 3 --disturb
writes benchmarks/results/lut_fidelity_<device>_<quiet|disturbed>.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _plain import plain_session  # benchmarks/_plain.py, beside this script

from hwofa import pipeline
from profiler import load_profile, to_onnx
from profiler.build import subnet_for
from profiler.calibration import fidelity
from profiler.disturb import Disturbance
from supernet import load_supernet


def independent_p50(runs: list, rounds: int, round_s: float, seed: int) -> tuple[list[float], list[float]]:
    """Per runner, the lowest and the median of its round medians (ms); rounds interleaved over
    runners in random order."""
    rng = random.Random(seed)
    meds: list[list[float]] = [[] for _ in runs]
    for run in runs:  # warm-up
        for _ in range(20):
            run()
    for _ in range(rounds):
        order = list(range(len(runs)))
        rng.shuffle(order)
        for i in order:
            samples, start = [], time.perf_counter()
            while time.perf_counter() - start < round_s or len(samples) < 20:
                t0 = time.perf_counter()
                runs[i]()
                samples.append(time.perf_counter() - t0)
            meds[i].append(1e3 * float(np.median(samples)))
    return [min(m) for m in meds], [float(np.median(m)) for m in meds]


def check(table: Any, space: Any, prof: Any, n: int, seed: int, rounds: int, round_s: float) -> dict[str, Any]:
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    runs = []
    for arch in archs:
        shape = (prof.batch_size, space.in_channels, arch.resolution, arch.resolution)
        sess = plain_session(to_onnx(subnet_for(space, arch), shape), prof.backend, prof.threads)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        runs.append(lambda sess=sess, x=x: sess(x))
    lowest, middle = (np.array(v) for v in independent_p50(runs, rounds, round_s, seed))
    again = np.array(independent_p50(runs, rounds, round_s, seed + 1)[0])
    pred = np.array([table.predict(a) for a in archs])
    raw = np.array([table.raw_ms(a) for a in archs])
    return {"calibrated": fidelity(pred, lowest), "uncalibrated_sum": fidelity(raw, lowest),
            "calibrated_vs_median_of_rounds": fidelity(pred, middle),
            "independent_timer_vs_itself": fidelity(again, lowest),
            "rows": [{"arch": a.to_dict(), "predicted_ms": float(p), "measured_ms": float(m),
                      "median_round_ms": float(md)} for a, p, m, md in zip(archs, pred, lowest, middle, strict=True)]}


def one_build(args: argparse.Namespace, lut: Path, build_no: int) -> dict[str, Any]:
    load = Disturbance(workers=args.workers, seed=build_no) if args.disturb else contextlib.nullcontext()
    t0 = time.time()
    with load:
        table, _, _ = pipeline.profile(args.device, args.supernet, lut, rebuild=True, progress=False)
    build_s = time.time() - t0
    net, _ = load_supernet(pipeline.supernet_dir(args.supernet))
    res = check(table, net.space, load_profile(args.device), args.subnets, args.seed + build_no, args.rounds,
                args.round_s)
    q = table.header.get("quality", {})
    rep = table.calibration["fidelity"]
    c = res["calibrated"]
    m, z = res["calibrated_vs_median_of_rounds"], res["independent_timer_vs_itself"]
    print(f"build {build_no}: {build_s:.0f} s, quality {q.get('status')}, reported ±10 % "
          f"{100 * rep['within_10pct']:.0f} % | independent on {args.subnets} fresh subnets: ±10 % "
          f"{100 * c['within_10pct']:.0f} %, ±5 % {100 * c['within_5pct']:.0f} %, mean abs "
          f"{c['mean_abs_pct_error']:.1f} %, max {c['max_abs_pct_error']:.1f} %, Spearman {c['spearman']:.3f} "
          f"(against the median round: ±10 % {100 * m['within_10pct']:.0f} %, ±5 % {100 * m['within_5pct']:.0f} %; "
          f"the independent timer against itself a minute later: ±10 % {100 * z['within_10pct']:.0f} %, ±5 % "
          f"{100 * z['within_5pct']:.0f} %)", flush=True)
    return {"build": build_no, "build_seconds": round(build_s, 1), "quality": q, "reported_fidelity": rep,
            "remeasured": table.header.get("remeasured", []), **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--subnets", type=int, default=50)
    ap.add_argument("--builds", type=int, default=1)
    ap.add_argument("--disturb", action="store_true", help="build under bursty load (2 workers)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--rounds", type=int, default=7, help="independent timer: rounds per subnet")
    ap.add_argument("--round-s", type=float, default=0.1, help="independent timer: seconds per round")
    ap.add_argument("--supernet")
    ap.add_argument("--note", default="", help="conditions to record with the results")
    args = ap.parse_args()
    builds: list[dict[str, Any]] = []
    cond = "disturbed" if args.disturb else "quiet"
    out = Path(__file__).parent / "results" / f"lut_fidelity_{args.device}_{cond}.json"
    with tempfile.TemporaryDirectory() as tmp:
        for b in range(args.builds):
            builds.append(one_build(args, Path(tmp) / "lut.json", b))
            ok = write_result(out, args, cond, builds)  # after every build: a long series keeps what it has
    print(f"{args.device} {cond}: {len(ok)}/{len(builds)} builds meet ≥95 % within ±10 % and ≥80 % within ±5 % "
          f"-> {out}")


def write_result(out: Path, args: argparse.Namespace, cond: str, builds: list[dict[str, Any]]) -> list:
    ok = [b for b in builds if b["calibrated"]["within_10pct"] >= 0.95 and b["calibrated"]["within_5pct"] >= 0.8]
    result = {"device": args.device, "condition": cond, "note": args.note,
              "disturbance": {"workers": args.workers} if args.disturb else None,
              "subnets": args.subnets, "independent_timer": {"rounds": args.rounds, "round_s": args.round_s,
                                                             "statistic": "lowest round median"},
              "builds_meeting_95_at_10pct_and_80_at_5pct": f"{len(ok)}/{len(builds)}",
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "builds": builds}
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return ok


if __name__ == "__main__":
    main()
