"""One function per CLI command: call the API, print what a user needs to see."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hwofa import pipeline
from hwofa.cli import echo, elapsed
from profiler import BACKENDS, get_backend, list_profiles, load_profile
from supernet import UserError, load_supernet


def check_out(path: str, folder: bool) -> None:
    """Refuse an unusable --out before any slow work."""
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise UserError(f"--out '{p}' is a file; the bundle needs a folder. Choose another --out.")
    if not folder and p.is_dir():
        raise UserError(f"--out '{p}' is a folder; give a file name such as {p / 'search.json'}.")


def cmd_devices(args: argparse.Namespace) -> int:
    rows = []
    for name in list_profiles():
        prof = load_profile(name)
        backend = get_backend(prof.backend, require=False) if prof.backend in BACKENDS else None
        ok, why = backend.available() if backend else (False, f"unknown backend '{prof.backend}'")
        version = backend.version() if ok else ""
        status = f"runs here ({prof.backend} {version}, {prof.threads} thread(s), {prof.precision})" if ok \
            else f"not here: {why}"
        rows.append(f"{name:<18} {prof.kind:<5} {'✓' if ok else '✗'} {status}")
    echo("\n".join(rows))
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    net, _ = load_supernet(pipeline.supernet_dir(args.supernet))
    echo(net.space.to_dict())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from supernet import load_dataset, load_recipe
    from supernet.train import Trainer

    recipe = load_recipe(args.recipe)
    data = load_dataset(args.dataset, args.data_dir)
    t0 = time.time()
    final = Trainer(recipe, data, args.out, device=args.torch_device).fit(resume=args.resume)
    for name, m in final["test_top1"].items():
        echo(f"{name:<9} test top-1 {m['test_top1']:.4f}")
    echo(f"✓ supernet written to {args.out} ({elapsed(t0)}); next: hwofa predictor --supernet {args.out}")
    return 0


def cmd_predictor(args: argparse.Namespace) -> int:
    from evolve import build_predictor

    report = build_predictor(args.supernet, n_subnets=args.subnets, seed=args.seed, data_dir=args.data_dir)
    echo(report)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    t0 = time.time()
    table, path, built = pipeline.profile(args.device, args.supernet, args.lut, rebuild=args.rebuild)
    fid, build_s = table.calibration["fidelity"], table.header.get("build_seconds", float("nan"))
    echo(f"{'measured' if built else 'cached'} LUT for {args.device}: {path}\n"
         f"  {len(table.entries)} entries, built in {build_s:.0f} s ({elapsed(t0)} now)\n"
         f"  calibration on {fid['n']} whole subnets ({fid['method']}): {100 * fid['within_10pct']:.0f} % within "
         f"±10 %, mean abs error {fid['mean_abs_pct_error']:.1f} %, rank correlation {fid['spearman']:.3f}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    t0 = time.time()
    check_out(args.out, folder=False)
    result = pipeline.search_devices(args.device, args.latency_ms, args.supernet, args.seed)
    pipeline.write_search(args.out, result)
    for device, r in result["devices"].items():
        echo(f"{device}: predicted {r['predicted_latency_ms']:.3f} ms (LUT mean abs error "
             f"{r['latency_error']['mean_abs_pct_error']:.1f} %), predicted val top-1 {r['predicted_top1']:.4f} "
             f"(predictor RMSE {r['top1_error'].get('rmse', float('nan')):.4f}); {len(r['pareto'])} Pareto points")
    echo(f"✓ wrote {args.out} ({elapsed(t0)})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from export import load_arch

    load_profile(args.device)  # an unknown device names close ones before any file is read
    check_out(args.out, folder=True)
    if args.search:
        entry = pipeline.read_search(args.search, args.device, args.supernet)
        report, checks = pipeline.export(args.device, args.out, search_entry=entry, supernet=args.supernet,
                                         data_dir=args.data_dir)
    else:
        report, checks = pipeline.export(args.device, args.out, arch=load_arch(args.arch), supernet=args.supernet,
                                         data_dir=args.data_dir)
    echo("\n".join(c.line() for c in checks))
    echo(f"wrote {Path(args.out) / 'model.onnx'} and model.json")
    return 0 if all(c.ok for c in checks) else 1


def cmd_run(args: argparse.Namespace) -> int:
    t0 = time.time()
    check_out(args.out, folder=True)
    res = pipeline.run(args.device, args.latency_ms, args.out, seed=args.seed, data_dir=args.data_dir,
                       supernet=args.supernet)
    rep, checks = res["report"], res["checks"]
    lat, acc = rep["latency_ms"], rep["accuracy"]
    echo("\n".join(c.line() for c in checks))
    echo(f"device {rep['device']} · budget {lat['budget']} ms · measured p50 {lat['measured_p50']:.3f} ms "
         f"(predicted {lat['predicted']:.3f} ms) · test top-1 {acc['top1_onnx']:.4f} "
         f"(predicted val {acc['predicted_val_top1']:.4f})")
    t = rep["timing_s"]
    echo(f"LUT {'built' if t['lut_built'] else 'cached'} in {t['profile']} s · total {elapsed(t0)} · "
         f"bundle in {args.out}/ (model.onnx, model.json, pareto.png, search.json)")
    if not all(c.ok for c in checks):
        raise UserError(f"no subnet measured within {lat['budget']} ms after {len(rep['attempts'])} attempts "
                        f"(last measured p50 {lat['measured_p50']:.3f} ms); the bundle in {args.out} is the "
                        "closest found. Raise --latency-ms a little.")
    return 0
