"""One function per CLI command: call the API, print what a user needs to see."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from hwofa import pipeline
from hwofa.cli import echo, elapsed
from hwofa.common import UserError, check_readable_file, probe_writable
from profiler import get_target, list_profiles, load_profile
from supernet import load_supernet

MIN_PREDICTOR_SUBNETS = 10


def cmd_devices(args: argparse.Namespace) -> int:
    """Each shipped profile: device kind, target (kind, name, precision), whether it runs here and why not."""
    rows = [f"{'device':<22} {'kind':<5} {'target':<24} {'precision':<9}   status"]
    for name in list_profiles():
        prof = load_profile(name)
        target = get_target(prof, require=False)
        ok, why = target.available()
        problem = target.precision_problem() if ok else None
        if ok and problem is None:
            status = f"runs here: {target.describe()}"
        else:
            status = f"not here: {why or problem}"
        label = f"{target.kind} {target.name}"
        rows.append(f"{name:<22} {prof.kind:<5} {label:<24} {prof.precision:<9} {'✓' if ok and not problem else '✗'} "
                    f"{status}")
    echo("\n".join(rows))
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    net, _ = load_supernet(pipeline.supernet_dir(args.supernet))
    echo(net.space.to_dict())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """One process, or one rank of a `torchrun` job (then only rank 0 writes and prints)."""
    from supernet import load_dataset, load_recipe
    from supernet.distributed import init_from_env
    from supernet.recipe import resolve_recipe
    from supernet.train import Trainer

    if args.recipe is not None:
        check_readable_file(resolve_recipe(args.recipe), "recipe")
    check_data_dir(args.data_dir)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out '{args.out}' is a file; a supernet run needs a folder. Choose another --out.")
    probe_writable(Path(args.out) / "supernet.json", "--out")
    recipe = load_recipe(args.recipe)
    data = load_dataset(args.dataset, args.data_dir)
    t0 = time.time()
    ctx = init_from_env(args.torch_device)
    try:
        final = Trainer(recipe, data, args.out, amp=args.amp, dist=ctx).fit(resume=args.resume)
    finally:
        ctx.close()
    if not ctx.is_main:
        return 0
    for name, m in final["test_top1"].items():
        echo(f"{name:<9} test top-1 {m['test_top1']:.4f}")
    ranks = f", {ctx.world_size} processes" if ctx.enabled else ""
    echo(f"✓ supernet written to {args.out} ({elapsed(t0)}{ranks}); next: hwofa predictor --supernet {args.out}")
    return 0


def cmd_predictor(args: argparse.Namespace) -> int:
    from evolve import build_predictor

    if args.subnets < MIN_PREDICTOR_SUBNETS:
        raise UserError(f"--subnets {args.subnets} is too few: the predictor holds out a fifth of them to measure its "
                        f"error; use at least {MIN_PREDICTOR_SUBNETS} (default 500).")
    run = pipeline.supernet_dir(args.supernet)
    check_data_dir(args.data_dir)
    load_supernet(run)  # a bad run folder is refused before any subnet is measured
    probe_writable(run / "accuracy_predictor.json", "--supernet")  # the predictor is written beside the supernet
    report = build_predictor(run, n_subnets=args.subnets, seed=args.seed, data_dir=args.data_dir)
    echo(report)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    t0 = time.time()
    table, path, built = pipeline.profile(args.device, args.supernet, args.lut, rebuild=args.rebuild,
                                          trust_command=args.trust_device_command)
    fid, build_s = table.calibration["fidelity"], table.header.get("build_seconds", float("nan"))
    q = table.header.get("quality", {})
    modelled = table.header.get("source") == "modelled"
    how = ("modelled by a cost model (no timing rounds)" if modelled else
           f"{q.get('entry_rounds_replaced', 0)} of {q.get('entry_rounds', 0)} entry rounds set aside (disturbed by "
           "outside load or out of agreement)")
    echo(f"{('modelled' if modelled else 'measured') if built else 'cached'} LUT for {args.device}: {path}\n"
         f"  {len(table.entries)} entries, built in {build_s:.0f} s ({elapsed(t0)} now); {how}\n"
         f"  fidelity on {fid['n']} whole subnets ({fid['method']}): {100 * fid['within_10pct']:.0f} % within "
         f"±10 %, {100 * fid.get('within_5pct', float('nan')):.0f} % within ±5 %, mean abs error "
         f"{fid['mean_abs_pct_error']:.1f} %, rank correlation {fid['spearman']:.3f}")
    rep = q.get("repeatability")
    if rep:
        echo(f"  repeatability: {rep['n']} calibration subnets measured again later moved by "
             f"{rep['median_abs_pct']:.1f} % (median; max {rep['max_abs_pct']:.1f} %)")
    if q.get("status") == "degraded":
        echo(f"✗ DEGRADED table: {q.get('reason')}. It is saved, but its predictions may miss by more than the goal; "
             f"rebuild it when the machine is quieter (hwofa profile --device {args.device} --rebuild).")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    t0 = time.time()
    check_out_file(args.out)
    result = pipeline.search_devices(args.device, args.latency_ms, args.supernet, args.seed,
                                     trust_command=args.trust_device_command)
    pipeline.write_search(args.out, result)
    for device, r in result["devices"].items():
        echo(f"{device}: predicted {r['predicted_latency_ms']:.3f} ms (LUT mean abs error "
             f"{r['latency_error']['mean_abs_pct_error']:.1f} %), predicted val top-1 {r['predicted_top1']:.4f} "
             f"(predictor RMSE {r['top1_error'].get('rmse', float('nan')):.4f}); {len(r['pareto'])} Pareto points")
        note = unconstrained_note(args.latency_ms, r)
        if note:
            echo(f"  {note}")
    echo(f"✓ wrote {args.out} ({elapsed(t0)})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from export import check_out_folder, load_arch

    load_profile(args.device)  # an unknown device names close ones before any file is read
    check_out_folder(args.out)
    check_data_dir(args.data_dir)
    if args.search:
        entry = pipeline.read_search(args.search, args.device, args.supernet)
        res = pipeline.export(args.device, args.out, search_entry=entry, supernet=args.supernet,
                              data_dir=args.data_dir, trust_command=args.trust_device_command)
    else:
        res = pipeline.export(args.device, args.out, arch=load_arch(args.arch), supernet=args.supernet,
                              data_dir=args.data_dir, trust_command=args.trust_device_command)
    echo("\n".join(c.line() for c in res.checks))
    echo(verification_line(res.report))
    if not res.written:
        echo(f"✗ not written: '{args.out}' holds a bundle that passed its checks and this one did not "
             "(model.json 'passed': false); the old bundle was left as it was.")
        return 1
    echo(f"wrote {Path(args.out) / 'model.onnx'} and model.json ({'passed' if res.passed else 'NOT passed'})")
    return 0 if res.passed else 1


def cmd_run(args: argparse.Namespace) -> int:
    from export import latency_figure

    t0 = time.time()
    res = pipeline.run(args.device, args.latency_ms, args.out, seed=args.seed, data_dir=args.data_dir,
                       supernet=args.supernet, trust_command=args.trust_device_command)
    rep, checks = res["report"], res["checks"]
    lat, acc = rep["latency_ms"], rep["accuracy"]
    echo("\n".join(c.line() for c in checks))
    echo(verification_line(rep))
    how, ms = latency_figure(rep)  # "measured p50" or "modelled": a cost model's figure is never called measured
    top1 = acc["top1_onnx"] if acc.get("top1") is None else acc["top1"]  # the bundle's model, at its precision
    echo(f"device {rep['device']} · budget {lat['budget']} ms · {how} {ms:.3f} ms "
         f"(predicted {lat['predicted']:.3f} ms) · test top-1 {top1:.4f} {rep.get('precision', 'fp32')} "
         f"(predicted val {acc['predicted_val_top1']:.4f})")
    note = unconstrained_note(args.latency_ms, res["search"]["devices"][rep["device"]])
    if note:
        echo(note)
    t = rep["timing_s"]
    where = f"bundle in {args.out}/ (model.onnx, model.json, pareto.png, search.json)" if res["written"] else \
        f"nothing written: {args.out}/ keeps its earlier bundle, which passed its checks"
    echo(f"LUT {'built' if t['lut_built'] else 'cached'} in {t['profile']} s · total {elapsed(t0)} · {where}")
    if not rep["passed"]:
        kept = (f"the bundle in {args.out} is the closest found (model.json 'passed': false)" if res["written"] else
                f"{args.out} already held a bundle that passed its checks, so it was left as it was and nothing "
                "was written")
        raise UserError(f"no subnet within {lat['budget']} ms after {len(rep['attempts'])} attempts "
                        f"(last {how} {ms:.3f} ms); {kept}. Raise --latency-ms a little.")
    return 0


def check_out_file(path: str) -> None:
    """Refuse an unusable file --out (search.json) before any slow work."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"--out '{p}' is a folder; give a file name such as {p / 'search.json'}.")
    probe_writable(p, "--out")


def check_data_dir(data_dir: str | None) -> None:
    if data_dir is not None and not Path(data_dir).is_dir():
        what = "is a file" if Path(data_dir).exists() else "does not exist"
        raise UserError(f"--data-dir '{data_dir}' {what}; give the folder that holds the dataset's files.")


def unconstrained_note(budget_ms: float, entry: dict[str, Any]) -> str:
    """Say so when the budget constrains nothing (e.g. --latency-ms 1e9)."""
    largest = entry.get("largest_predicted_latency_ms")
    if largest is None or budget_ms < largest:
        return ""
    chosen = "so the largest subnet was chosen" if entry.get("chosen_is_largest") else \
        "so the budget did not constrain the choice: the subnet with the best predicted accuracy was chosen"
    return (f"note: the budget {budget_ms:g} ms is above the largest subnet's predicted latency "
            f"({largest:.3f} ms), {chosen}.")


def verification_line(report: dict[str, Any]) -> str:
    v = report["verification"]
    how = "reused from the cache" if v["cached"] else "computed and cached"
    what = "modelled" if report["latency_ms"].get("modelled") is not None else "measured"
    return f"  verification {how} (key {v['key'][:12]}…); latency {what} now"
