"""`hwofa run`: profile (cached) + front + finalists + export for one or several devices, then the
cross-device report.

1. Budgets, devices and --out are checked; the supernet is loaded once (hwofa.session).
2. Every device's LUT: cached ones first, each budget checked against its table as soon as it is
   at hand (an infeasible budget is refused before anything is measured).
3. Every device's Pareto front; a budget the front cannot meet is refused before any export.
4. Per device: finalists measured, the chosen one verified and its bundle made.
5. Several devices: each chosen subnet measured on every other device (export/crossdevice.py).
6. Everything is written into a side folder and swapped into --out whole. One device: the bundle
   straight in --out (model.onnx, model.json, pareto.png, search.json). Several: <out>/<device>/
   bundles, <out>/search.json, report.json, report.md, fronts.png.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import ExportResult, check_out_folder, commit_bundle
from export.bundle import StagedBundle, holds_passed_bundle
from export.crossdevice import Cell, CrossDeviceReport, Subnet
from export.fronts_plot import Panel, fronts_png
from hwofa.budgets import device_budgets
from hwofa.common import UserError, atomic_write_bytes, atomic_write_json
from hwofa.finalists import FINALISTS, settle
from hwofa.searchfile import read_search_file
from hwofa.searching import DeviceSearch, find_fronts, pick, prepare_tables, search_result
from hwofa.session import Session
from profiler import get_target

log = logging.getLogger(__name__)
MAX_FINALISTS = 20


@dataclass
class DeviceRun:
    search: DeviceSearch
    result: ExportResult

    @property
    def name(self) -> str:
        return self.search.name


@dataclass
class RunResult:
    devices: list[DeviceRun]
    search: dict[str, Any]
    report: CrossDeviceReport | None
    out: Path
    written: bool
    seconds: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(d.result.passed for d in self.devices)

    def __getitem__(self, key: str) -> Any:
        """The keys `run` returned before it took several devices ("report" and "checks": the first device's)."""
        first = self.devices[0].result
        return {"report": first.report, "checks": first.checks, "search": self.search, "written": self.written}[key]


def check_finalists(k: int) -> None:
    if not (isinstance(k, int) and 1 <= k <= MAX_FINALISTS):
        raise UserError(f"--finalists {k}: give how many of the front's best points under the budget are measured "
                        f"before one is chosen, 1 to {MAX_FINALISTS} (default {FINALISTS}).")


def run(devices: str | Sequence[str], latency_ms: float | None = None, out: str | os.PathLike = "out",
        seed: int = 0, progress: bool = True, data_dir: str | os.PathLike | None = None,
        supernet: str | os.PathLike | None = None, trust_command: bool = False,
        finalists: int = FINALISTS, fronts_from: str | os.PathLike | None = None) -> RunResult:
    """Run the whole job for every device (`D` or `D=MS`; `latency_ms` for those without their own).
    `fronts_from`: an earlier search.json whose fronts answer these budgets without searching again."""
    t0 = time.time()
    budgets = device_budgets(devices, latency_ms, trust_command)
    check_finalists(finalists)
    for b in budgets:
        get_target(b.profile)  # a device that cannot run here, or not at its precision: refused now
    out_path = check_out_folder(out)
    session = Session.open(supernet, data_dir, trust_command, progress, seed)
    if fronts_from is not None:
        read_search_file(fronts_from, session, what="--fronts")  # a bad file: refused before any LUT is built
    searches = prepare_tables(session, budgets)
    t_profile = time.time() - t0
    find_fronts(session, searches, fronts_from)  # a budget below a whole front is refused here, before any export
    runs = [export_device(session, ds, finalists) for ds in searches]
    t1 = time.time()
    report = cross_device(session, runs) if len(runs) > 1 else None
    t_cross = time.time() - t1
    search = search_result(session, searches)
    for r in runs:
        r.result.report["timing_s"] = {"profile": round(t_profile, 1), "lut_built": r.search.lut_built,
                                       **r.search.seconds, "total": round(time.time() - t0, 1)}
    written = commit_run(session, out_path, runs, search, report)
    return RunResult(runs, search, report, out_path, written, {"profile": round(t_profile, 1),
                                                               "cross_device": round(t_cross, 1),
                                                               "total": round(time.time() - t0, 1)})


def export_device(session: Session, ds: DeviceSearch, k: int) -> DeviceRun:
    """Finalists measured, the chosen one verified: the device's bundle, not yet written."""
    choice = pick(session, ds, k)
    ex = session.exporter(ds.device.profile)
    t0 = time.time()
    cand, timing = settle(ex, choice, ds.budget_ms)
    res = ex.finish(cand, timing, ds.budget_ms, ds.predicted(session))
    ds.seconds["export"] = round(time.time() - t0, 1)
    res.report["finalists"] = choice.to_dict(ds.budget_ms)
    return DeviceRun(ds, res)


def cross_device(session: Session, runs: list[DeviceRun]) -> CrossDeviceReport:
    """Each device's chosen subnet on every device: measured (or modelled) where the column device
    runs here, all rows of a column timed together; its LUT's prediction where it does not."""
    cells: dict[str, dict[str, Cell]] = {r.name: {} for r in runs}
    for col in runs:
        budget, own = col.search.budget_ms, col.result
        others = {r.name: r.search.choice.chosen.point.arch for r in runs
                  if r is not col and r.search.choice.chosen.point.arch != col.search.choice.chosen.point.arch}
        ex = session.exporter(col.search.device.profile)
        timings = {}
        if others and not col.search.cannot_run:
            models = {name: ex.source(ex.candidate(arch, calibrate=False)) for name, arch in others.items()}
            timings = ex.target.cost_many(models, random.Random(session.seed), progress=False, desc="cross-device")
        for r in runs:
            if r.name not in others:  # its own subnet, or the same arch: the bundle's own figure
                cells[r.name][col.name] = Cell(own.timing.p50_ms, ex.target.source, budget)
            elif r.name in timings:
                cells[r.name][col.name] = Cell(timings[r.name].p50_ms, ex.target.source, budget)
            else:
                cells[r.name][col.name] = Cell(col.search.table.predict(others[r.name]), "predicted", budget)
    rmse = session.predictor.report_summary().get("rmse")
    return CrossDeviceReport([_row(r) for r in runs], cells, session.meta.dataset.name, rmse)


def _row(r: DeviceRun) -> Subnet:
    rep = r.result.report
    acc = rep["accuracy"]
    point = r.search.choice.chosen.point
    return Subnet(r.name, r.search.budget_ms, point.arch.to_dict(), point.arch.key(), acc["top1_onnx"], acc.get("top1"),
                  point.predicted_top1, rep.get("precision", "fp32"), bool(rep["passed"]), rep["latency_ms"]["source"],
                  f"{r.name}/")


def commit_run(session: Session, out: Path, runs: list[DeviceRun], search: dict[str, Any],
               report: CrossDeviceReport | None) -> bool:
    """Swap the run into --out whole; a device whose bundle missed its budget never replaces one of
    the same device that passed (then nothing is written). Returns whether --out holds this run."""
    if report is None:
        r = runs[0]
        res = commit_bundle(session.exporter(r.search.device.profile), r.result, out, r.search.pareto(),
                            {"search.json": search})
        return res.written
    with StagedBundle(out) as staged:
        for r in runs:
            folder = staged.dir / r.name
            folder.mkdir()
            session.exporter(r.search.device.profile).write(folder, r.result, r.search.pareto())
        atomic_write_json(staged.dir / "search.json", search)
        atomic_write_json(staged.dir / "report.json", report.to_dict())
        atomic_write_bytes(staged.dir / "report.md", report.markdown().encode())
        fronts_png(staged.dir / "fronts.png", [_panel(r) for r in runs],
                   f"hwofa: Pareto front per device ({session.meta.dataset.name})")
        kept = [r.name for r in runs if not r.result.passed and _held_passed(out, r.name)]
        if kept:
            log.warning("%s holds bundles that passed for %s and this run's did not; nothing was written",
                        out, ", ".join(kept))
            return False
        written = staged.commit(True)
    for r in runs:
        r.result.written, r.result.out = written, out / r.name
    return written


def _held_passed(out: Path, device: str) -> bool:
    """Whether --out holds a passed bundle of `device` (in its own folder, or a one-device run's)."""
    if holds_passed_bundle(out / device):
        return True
    try:
        return holds_passed_bundle(out) and json.loads((out / "model.json").read_text()).get("device") == device
    except (OSError, ValueError):
        return False


def _panel(r: DeviceRun) -> Panel:
    ds, choice = r.search, r.search.choice
    source = "predicted" if not choice.measured else r.result.report["latency_ms"]["source"].split(":")[0]
    return Panel(ds.name, ds.budget_ms, [(p.predicted_latency_ms, p.predicted_top1) for p in ds.front.points],
                 source, [(f.ms, f.point.predicted_top1) for f in choice.finalists],
                 (r.result.timing.p50_ms, choice.chosen.point.predicted_top1))
