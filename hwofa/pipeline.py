"""The Python API behind every CLI command: profile, search, export, run.

Each command opens one Session (the supernet loaded and hashed once) and hands it to every step.
The steps live in their own modules: budgets (hwofa.budgets), LUTs (hwofa.luts), fronts and
finalists (hwofa.searching, hwofa.finalists), the several-device run and its report (hwofa.run).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from export import ExportResult, check_out_folder, commit_bundle
from hwofa.budgets import check_budget, device_budgets
from hwofa.common import UserError
from hwofa.finalists import FINALISTS
from hwofa.luts import profile
from hwofa.run import RunResult, check_finalists, run
from hwofa.searchfile import read_search, read_search_file, write_search
from hwofa.searching import find_fronts, pick, prepare_tables, search_result
from hwofa.session import Session, supernet_dir
from profiler import LatencyTable, default_lut_path, load_profile
from supernet import ArchSpec

__all__ = ["RunResult", "Session", "check_arch", "check_budget", "export", "profile", "read_search", "run",
           "search_devices", "supernet_dir", "write_search"]


def search_devices(devices: str | Sequence[str], latency_ms: float | None = None,
                   supernet: str | os.PathLike | None = None, seed: int = 0,
                   luts: dict[str, str | os.PathLike] | None = None, progress: bool = True,
                   trust_command: bool = False, finalists: int = FINALISTS,
                   data_dir: str | os.PathLike | None = None,
                   fronts_from: str | os.PathLike | None = None) -> dict[str, Any]:
    """Per device (`D` or `D=MS`): its front (searched, or kept in `fronts_from`, an earlier search.json),
    its finalists measured where the device runs here, and the chosen subnet; returns the search.json
    content."""
    budgets = device_budgets(devices, latency_ms, trust_command)
    check_finalists(finalists)
    session = Session.open(supernet, data_dir, trust_command, progress, seed)
    if fronts_from is not None:
        read_search_file(fronts_from, session, what="--fronts")  # a bad file: refused before any LUT is built
    searches = prepare_tables(session, budgets, luts, need_target=False)
    find_fronts(session, searches, fronts_from)  # a budget below a whole front is refused here, before any measurement
    for ds in searches:
        pick(session, ds, finalists)
    return search_result(session, searches)


def export(device: str, out: str | os.PathLike, arch: ArchSpec | None = None,
           search: str | os.PathLike | None = None, supernet: str | os.PathLike | None = None,
           data_dir: str | os.PathLike | None = None, trust_command: bool = False) -> ExportResult:
    """Export an arch (given, or chosen by a search.json) with the full verification checklist; the
    bundle replaces --out only when it passes (see export/bundle.py)."""
    prof = load_profile(device, trust_command)
    out_path = check_out_folder(out)
    session = Session.open(supernet, data_dir, trust_command)
    budget, predicted, pareto = None, None, None
    if search is not None:
        entry = read_search(search, device, session=session)
        arch, budget, predicted, pareto = entry["arch"], entry["budget_ms"], _predicted(entry), _pareto(entry)
        session.space.validate(arch, "the searched arch")
    elif arch is None:
        raise UserError("export needs --search or --arch.")
    else:
        session.space.validate(arch)
        table = _cached_lut(prof.name, session)
        if table is not None:
            predicted = {"latency_ms": table.predict(arch), "latency_error": table.calibration["fidelity"]}
    ex = session.exporter(prof)
    cand = ex.candidate(arch)
    res = ex.finish(cand, ex.measure(cand), budget, predicted)
    return commit_bundle(ex, res, out_path, pareto)


def _cached_lut(device: str, session: Session) -> LatencyTable | None:
    try:
        return LatencyTable.load(default_lut_path(device, session.space), space=session.space, device=device)
    except UserError:
        return None


def check_arch(arch: ArchSpec, supernet: str | os.PathLike | None = None, source: str = "arch") -> None:
    """Refuse an arch outside the supernet's space before anything slow (UserError naming every problem)."""
    Session.open(supernet).space.validate(arch, source)


def _predicted(entry: dict[str, Any]) -> dict[str, Any]:
    return {"latency_ms": entry["predicted_latency_ms"], "top1": entry["predicted_top1"],
            "latency_error": entry.get("latency_error"), "top1_error": entry.get("top1_error")}


def _pareto(entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    """pareto.png's points: the entry's front (hwofa-search/2) or its pareto list (/1)."""
    if isinstance(entry.get("front"), dict):
        import evolve

        return [{"arch": p.arch.to_dict(), "latency_ms": p.predicted_latency_ms, "top1": p.predicted_top1}
                for p in evolve.Front.from_dict(entry["front"]).points]
    return entry.get("pareto")
