"""Wall time of the main job, cold (empty HWOFA_HOME: the LUT is measured), warm (LUT cached)
and warm again (LUT and the chosen subnet's verification cached), each as a fresh `hwofa run`
process.

    python benchmarks/pipeline_timing.py --latency-ms 0.15
writes benchmarks/results/pipeline_timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--latency-ms", type=float, default=0.15)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="hwofa_home_")
    env = {**os.environ, "HWOFA_HOME": home}
    rows = {}
    for label in ("cold", "warm", "warm again"):
        out = Path(tempfile.mkdtemp(prefix=f"hwofa_run_{label}_"))
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "hwofa", "run", "--device", args.device, "--latency-ms",
                               str(args.latency_ms), "--out", str(out)], env=env, capture_output=True, text=True)
        wall = time.time() - t0
        report = json.loads((out / "model.json").read_text()) if (out / "model.json").is_file() else {}
        rows[label] = {"wall_s": round(wall, 1), "exit": proc.returncode, "timing_s": report.get("timing_s"),
                       "measured_p50_ms": report.get("latency_ms", {}).get("measured_p50"),
                       "top1_onnx": report.get("accuracy", {}).get("top1_onnx"), "stdout": proc.stdout[-2000:]}
        print(f"{label}: {wall:.1f} s, exit {proc.returncode}")
    result = {"device": args.device, "latency_ms": args.latency_ms, "cores": os.cpu_count(), **rows}
    path = Path(__file__).parent / "results" / "pipeline_timing.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
