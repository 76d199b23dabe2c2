"""One function per CLI command: call the API, print what a user needs to see."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from hwofa import pipeline, summary
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
                        f"error; use at least {MIN_PREDICTOR_SUBNETS} (default 1000).")
    run = pipeline.supernet_dir(args.supernet)
    check_data_dir(args.data_dir)
    load_supernet(run)  # a bad run folder is refused before any subnet is measured
    probe_writable(run / "accuracy_predictor.json", "--supernet")  # the predictor is written beside the supernet
    report = build_predictor(run, n_subnets=args.subnets, seed=args.seed, data_dir=args.data_dir,
                             model=args.model)
    echo(report)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    t0 = time.time()
    table, path, built = pipeline.profile(args.device, args.supernet, args.lut, rebuild=args.rebuild,
                                          trust_command=args.trust_device_command)
    fid, build_s = table.calibration["fidelity"], table.header.get("build_seconds", float("nan"))
    q = table.header.get("quality", {})
    modelled = table.header.get("source") == "modelled"
    if modelled:
        how = "modelled by a cost model (no timing rounds)"
    elif table.header.get("kind") == "command":
        how = "latencies reported by the device's command (several invocations each, median)"
    else:
        how = (f"{q.get('entry_rounds_replaced', 0)} of {q.get('entry_rounds', 0)} entry rounds set aside "
               "(disturbed by outside load or out of agreement)")
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
    check_data_dir(args.data_dir)
    result = pipeline.search_devices(args.device, args.latency_ms, args.supernet, args.seed,
                                     trust_command=args.trust_device_command, finalists=args.finalists,
                                     data_dir=args.data_dir, fronts_from=args.fronts)
    pipeline.write_search(args.out, result)
    echo("\n".join(summary.search_lines(result)))
    echo(f"✓ wrote {args.out} ({elapsed(t0)})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from export import load_arch

    load_profile(args.device)  # an unknown device names close ones before any file is read
    check_data_dir(args.data_dir)
    arch = load_arch(args.arch) if args.arch else None
    res = pipeline.export(args.device, args.out, arch=arch, search=args.search, supernet=args.supernet,
                          data_dir=args.data_dir, trust_command=args.trust_device_command)
    echo("\n".join(c.line() for c in res.checks))
    echo(summary.verification_line(res.report))
    if not res.written:
        echo(f"✗ not written: '{args.out}' holds a bundle that passed its checks and this one did not "
             "(model.json 'passed': false); the old bundle was left as it was.")
        return 1
    echo(f"wrote {Path(args.out) / 'model.onnx'} and model.json ({'passed' if res.passed else 'NOT passed'})")
    return 0 if res.passed else 1


def cmd_run(args: argparse.Namespace) -> int:
    check_data_dir(args.data_dir)
    res = pipeline.run(args.device, args.latency_ms, args.out, seed=args.seed, data_dir=args.data_dir,
                       supernet=args.supernet, trust_command=args.trust_device_command, finalists=args.finalists,
                       fronts_from=args.fronts)
    echo("\n".join(summary.run_lines(res, args.out)))
    missed = [d for d in res.devices if not d.result.passed]
    if missed:
        what = "; ".join(f"'{d.name}' ({_closest(d)})" for d in missed)
        kept = (f"{args.out} holds the closest found, model.json 'passed': false" if res.written else
                f"{args.out} already held bundles that passed their checks, so it was left as it was and nothing "
                "was written")
        raise UserError(f"no subnet met its budget on {what}; {kept}. Raise the budget of "
                        f"{'that device' if len(missed) == 1 else 'those devices'} a little (--device D=MS).")
    return 0


def _closest(d: Any) -> str:
    from export import latency_figure

    how, ms = latency_figure(d.result.report)
    choice = d.search.choice
    return (f"{len(choice.finalists)} finalists in {choice.rounds} round(s), closest {how} {ms:.3f} ms > "
            f"{d.search.budget_ms:g} ms")


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
