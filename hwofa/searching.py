"""Search per device: its LUT (budget checked against it), its Pareto front, its finalists, and the
search.json entry that keeps all three (a later budget is answered from the kept front)."""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwofa.budgets import DeviceBudget, check_feasible
from hwofa.common import UserError, sha256_file
from hwofa.finalists import FINALISTS, Choice, choose, margin_for, predicted_only
from hwofa.luts import cached_table, device_table, warn_if_degraded
from hwofa.searchfile import SEARCH_FORMAT, kept_fronts
from hwofa.session import Session
from profiler import LatencyTable, default_lut_path, get_target

log = logging.getLogger(__name__)
POPULATION, GENERATIONS = 100, 500


@dataclass
class DeviceSearch:
    """One device's search, filled in step by step."""

    device: DeviceBudget
    table: LatencyTable
    lut_path: Path
    lut_built: bool
    cannot_run: str | None = None  # why the device does not run here (its finalists are then not measured)
    front: Any = None  # evolve.Front
    front_from: str | None = None  # the search.json it was kept in (None: searched in this run)
    choice: Choice | None = None
    seconds: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def budget_ms(self) -> float:
        return self.device.budget_ms

    def pareto(self) -> list[dict[str, Any]]:
        """The front as pareto.png draws it."""
        return [{"arch": p.arch.to_dict(), "latency_ms": p.predicted_latency_ms, "top1": p.predicted_top1}
                for p in self.front.points]

    def predicted(self, session: Session) -> dict[str, Any]:
        """The chosen subnet's predictions and their errors (model.json's `predicted` figures)."""
        p = self.choice.chosen.point
        return {"latency_ms": p.predicted_latency_ms, "top1": p.predicted_top1,
                "latency_error": self.latency_error(), "top1_error": session.predictor.report_summary()}

    def latency_error(self) -> dict[str, Any]:
        fid = self.table.calibration["fidelity"]
        return {k: fid[k] for k in ("within_10pct", "mean_abs_pct_error", "max_abs_pct_error", "spearman", "n",
                                    "method")}

    def entry(self, session: Session) -> dict[str, Any]:
        """search.json's entry for the device: budget, front, finalists, the chosen arch and its predictions."""
        chosen, b = self.choice.chosen, self.budget_ms
        largest = session.space.largest()
        return {"budget_ms": b, "arch": chosen.point.arch.to_dict(),
                "predicted_latency_ms": chosen.point.predicted_latency_ms,
                "predicted_top1": chosen.point.predicted_top1, "chosen": chosen.to_dict(b), **self.choice.to_dict(b),
                "front": self.front.to_dict(), "front_size": len(self.front.points), "front_from": self.front_from,
                "lut": {"path": str(self.lut_path), "sha256": sha256_file(self.lut_path)},
                "latency_error": self.latency_error(), "top1_error": session.predictor.report_summary(),
                "largest_predicted_latency_ms": self.table.predict(largest),
                "chosen_is_largest": chosen.point.arch == largest, "seconds": self.seconds}


def prepare_tables(session: Session, budgets: list[DeviceBudget], luts: dict[str, Any] | None = None,
                   need_target: bool = True) -> list[DeviceSearch]:
    """Every device's LUT, its budget checked against it as soon as it is at hand: cached tables first
    (so a bad budget there is refused before any table is measured), then the ones to measure. With
    `need_target=False` a device that does not run here is served by its cached table, unmeasured."""
    luts = luts or {}
    ready: dict[str, DeviceSearch] = {}
    for b in budgets:
        path = Path(luts[b.given]) if b.given in luts else default_lut_path(b.name, session.space)
        try:
            target = get_target(b.profile)
        except UserError as exc:
            if need_target or not path.is_file():
                raise
            table = LatencyTable.load(path, space=session.space, device=b.name)
            ready[b.name] = DeviceSearch(b, table, path, False, cannot_run=str(exc).rstrip("."))
            check_feasible(b, table)
            continue
        table = cached_table(b.profile, target, session.space, path, hint_lut=b.given in luts)
        if table is not None:
            check_feasible(b, table)
            ready[b.name] = DeviceSearch(b, table, path, False)
    out = []
    for b in budgets:
        if b.name not in ready:
            t0 = time.time()
            table, path, built = device_table(b.profile, session.space, luts.get(b.given), progress=session.progress,
                                              warn=False)
            check_feasible(b, table)
            ready[b.name] = DeviceSearch(b, table, path, built, seconds={"profile": round(time.time() - t0, 1)})
        warn_if_degraded(ready[b.name].table, b.name)
        out.append(ready[b.name])
    return out


def find_fronts(session: Session, searches: list[DeviceSearch], fronts_from: str | os.PathLike | None = None,
                population: int = POPULATION, generations: int = GENERATIONS) -> None:
    """Every device's Pareto front of predicted top-1 against predicted latency: kept from an earlier
    search.json (`fronts_from`, where it still holds), else searched, all devices together
    (evolve.search_fronts: shared breeding and predictor). Then each budget is checked against its
    front (UserError naming the device) before anything is measured."""
    import evolve

    kept = kept_fronts(fronts_from, session, {ds.name: ds.lut_path for ds in searches}) if fronts_from else {}
    todo = [ds for ds in searches if ds.name not in kept]
    searched = {ds.name for ds in todo}
    t0 = time.time()
    if todo:
        kept.update(evolve.search_fronts(session.space, session.predictor, {ds.name: ds.table for ds in todo},
                                         random.Random(session.seed), population=population, generations=generations))
    for ds in searches:
        ds.front = kept[ds.name]
        ds.front_from = None if ds.name in searched else str(fronts_from)
        ds.seconds["search"] = round(time.time() - t0, 2) if ds.name in searched else 0.0  # one search for all
        try:
            ds.front.under(ds.budget_ms, 1)
        except UserError as exc:
            raise UserError(f"device '{ds.name}': {exc}") from None


def pick(session: Session, ds: DeviceSearch, k: int = FINALISTS) -> Choice:
    """Measure the device's finalists and choose (predictions alone where the device does not run here)."""
    t0 = time.time()
    if ds.cannot_run:
        ds.choice = predicted_only(ds.front, ds.budget_ms, k, ds.cannot_run)
    else:
        ex = session.exporter(ds.device.profile)
        rep = (ds.table.header.get("quality") or {}).get("repeatability") or {}
        ds.choice = choose(ex, ds.front, ds.budget_ms, k, random.Random(session.seed),
                           margin=margin_for(ex.target.source, rep.get("median_abs_pct")))
    ds.seconds["finalists"] = round(time.time() - t0, 1)
    return ds.choice


def search_result(session: Session, searches: list[DeviceSearch]) -> dict[str, Any]:
    """The search.json content: per device its budget, front, finalists and choice; seed; input hashes."""
    return {"format": SEARCH_FORMAT, "seed": session.seed, "inputs": session.inputs(),
            "predictor": session.predictor.report_summary(),
            "settings": {k: v for k, v in searches[0].front.settings.items() if k != "max_latency_ms"},
            "devices": {ds.name: ds.entry(session) for ds in searches}}
