"""The Python API behind every CLI command: profile, search, export, run."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from evolve import load_predictor, search
from export import Exporter, ExportResult, check_out_folder, commit_bundle, export_subnet
from hwofa.common import (
    NUMBER,
    UserError,
    atomic_write_json,
    json_type,
    read_json,
    require_fields,
    resolve_run,
    sha256_file,
)
from profiler import (
    LatencyTable,
    build_lut,
    default_lut_path,
    get_target,
    load_profile,
    quality_warning,
    stale_reason,
)
from supernet import ArchSpec, SearchSpace, load_supernet

log = logging.getLogger(__name__)
SEARCH_FORMAT = "hwofa-search/1"
MAX_EXPORT_ATTEMPTS = 3
RETRY_GRID = 0.96


def supernet_dir(run: str | os.PathLike | None) -> Path:
    """The supernet run folder (default: the shipped one), refused clearly when it is not one."""
    if run is None:
        return resolve_run(None)
    path = Path(run)
    if path.is_file():
        hint = f" (here: '{path.parent}')" if path.name == "supernet.json" else ""
        raise UserError(f"--supernet '{run}' is a file; give the run folder that holds supernet.json and "
                        f"supernet.safetensors{hint}.")
    if not path.exists():
        raise UserError(f"--supernet '{run}' does not exist; give a run folder written by `hwofa train --out RUN`.")
    if not (path / "supernet.json").exists():
        raise UserError(f"--supernet '{run}' is not a supernet run folder: it holds no supernet.json "
                        "(`hwofa train --out RUN` writes one).")
    return path


def check_budget(latency_ms: float) -> None:
    if not (isinstance(latency_ms, (int, float)) and math.isfinite(latency_ms) and latency_ms > 0):
        raise UserError(f"--latency-ms must be a positive number of milliseconds, got {latency_ms}.")


def profile(device: str, supernet: str | os.PathLike | None = None, lut: str | os.PathLike | None = None,
            rebuild: bool = False, progress: bool = True, warn: bool = True,
            trust_command: bool = False) -> tuple[LatencyTable, Path, bool]:
    """The device's LUT for the supernet's space: reused when cached and fresh, else (re)measured.

    Returns (table, path, whether anything was measured). `trust_command` lets a profile from
    outside the package run its external command (--trust-device-command).
    """
    prof = load_profile(device, trust_command)
    net, _ = load_supernet(supernet_dir(supernet))
    target = get_target(prof)  # a target that cannot run here, or not at its precision: a clear error, before measuring
    path = Path(lut) if lut is not None else default_lut_path(prof.name, net.space)
    if path.is_dir():
        raise UserError(f"--lut '{path}' is a folder; give the path of a LUT file (e.g. {path / 'lut.json'}).")
    if path.is_file() and rebuild:
        _refuse_foreign_lut(path, prof.name, net.space)
    if path.is_file() and not rebuild:
        try:
            table = LatencyTable.load(path, space=net.space, device=prof.name, require_complete=False)
        except UserError as exc:
            raise UserError(f"{exc} To measure it again, run `hwofa profile --device {device} --rebuild"
                            f"{f' --lut {path}' if lut is not None else ''}`; the file is replaced only once the "
                            "new table is complete.") from None
        if not table.missing() and table.calibration and stale_reason(table, prof, target) is None:
            if warn:
                _warn_if_degraded(table, device)
            return table, path, False
    table = build_lut(prof, net.space, path, rebuild=rebuild, progress=progress)
    if warn:
        _warn_if_degraded(table, device)
    return table, path, True


def _warn_if_degraded(table: LatencyTable, device: str) -> None:
    why = quality_warning(table)
    if why:
        log.warning("the latency table of '%s' is DEGRADED: %s. Its predictions may be off by more than the "
                    "goal; rebuild it when the machine is quieter: hwofa profile --device %s --rebuild",
                    device, why, device)


def _refuse_foreign_lut(path: Path, device: str, space: SearchSpace) -> None:
    """--rebuild may redo this device's table, never overwrite one of another device or space."""
    try:
        header = json.loads(path.read_text()).get("header", {})
        other_device, other_space = header.get("device"), SearchSpace.from_dict(header["space"]).space_hash()
    except Exception:  # unreadable or partial: rebuilding over it is what --rebuild is for
        return
    if other_device != device or other_space != space.space_hash():
        raise UserError(f"--lut '{path}' holds the table of device '{other_device}' for space {other_space}; "
                        f"--rebuild will not overwrite it with '{device}' (space {space.space_hash()}). "
                        "Choose another --lut path.")


def search_devices(devices: list[str], latency_ms: float, supernet: str | os.PathLike | None = None,
                   seed: int = 0, luts: dict[str, str | os.PathLike] | None = None,
                   progress: bool = True, warn: bool = True, trust_command: bool = False) -> dict[str, Any]:
    """Search one subnet per device under the budget; returns the search.json content."""
    check_budget(latency_ms)
    for device in devices:  # refuse a bad device name before any slow work
        load_profile(device)
    run = supernet_dir(supernet)
    net, meta = load_supernet(run)
    predictor = load_predictor(run, net.space)
    result: dict[str, Any] = {
        "format": SEARCH_FORMAT, "budget_ms": latency_ms, "seed": seed,
        "inputs": {"supernet": str(run), "supernet_sha256": meta.weights_sha256,
                   "space_hash": net.space.space_hash(),
                   "predictor_sha256": sha256_file(run / "accuracy_predictor.safetensors")},
        "predictor": predictor.report_summary(), "devices": {}}
    for device in devices:
        table, path, _ = profile(device, run, (luts or {}).get(device), progress=progress, warn=warn,
                                 trust_command=trust_command)
        res = search(net.space, predictor, table, latency_ms, random.Random(seed))
        fid = table.calibration["fidelity"]
        result["devices"][load_profile(device).name] = {  # a device is named by its profile's stem
            **res.to_dict(), "lut": {"path": str(path), "sha256": sha256_file(path)},
            "latency_error": {k: fid[k] for k in ("within_10pct", "mean_abs_pct_error", "max_abs_pct_error",
                                                  "spearman", "n", "method")},
            "top1_error": predictor.report_summary(),
            "largest_predicted_latency_ms": table.predict(net.space.largest()),
            "chosen_is_largest": res.arch == net.space.largest()}
    return result


def write_search(path: str | os.PathLike, result: dict[str, Any]) -> None:
    atomic_write_json(path, result)


def read_search(path: str | os.PathLike, device: str, supernet: str | os.PathLike | None = None) -> dict[str, Any]:
    """The device's entry of a search.json, checked against the supernet it claims to come from."""
    data = read_json(path, "search")
    if not isinstance(data, dict):
        raise UserError(f"search: '{path}' holds {json_type(data)}, not a hwofa search result (a JSON object "
                        f"with format '{SEARCH_FORMAT}', written by `hwofa search` or `hwofa run`).")
    if data.get("format") != SEARCH_FORMAT:
        found = f"its format is {json.dumps(data['format'])}" if "format" in data else "it has no 'format' field"
        raise UserError(f"search: '{path}' is not a hwofa search result: {found}, expected '{SEARCH_FORMAT}'. "
                        "Pass a search.json written by `hwofa search` or `hwofa run`.")
    require_fields(data, {"inputs": dict, "devices": dict, "budget_ms": NUMBER}, "search", path)
    device = load_profile(device).name  # results are keyed by the profile's name, also for a YAML path
    if device not in data["devices"]:
        raise UserError(f"search: '{path}' has no result for device '{device}'; it has "
                        f"{', '.join(data.get('devices', {})) or 'none'}.")
    _, meta = load_supernet(supernet_dir(supernet))
    if data["inputs"].get("supernet_sha256") != meta.weights_sha256 or \
            data["inputs"].get("space_hash") != meta.space.space_hash():
        raise UserError(f"search: '{path}' was made with another supernet (sha256 "
                        f"{str(data['inputs'].get('supernet_sha256', '?'))[:12]}…); pass the matching --supernet.")
    entry = data["devices"][device]
    require_fields(entry, {"arch": dict, "predicted_latency_ms": NUMBER, "predicted_top1": NUMBER},
                   f"search (device '{device}')", path)
    arch = ArchSpec.from_dict(entry["arch"], source=f"search '{path}' (device '{device}')")
    return {**entry, "budget_ms": data["budget_ms"], "arch": arch}


def export(device: str, out: str | os.PathLike, arch: ArchSpec | None = None,
           search_entry: dict[str, Any] | None = None, supernet: str | os.PathLike | None = None,
           data_dir: str | os.PathLike | None = None, trust_command: bool = False) -> ExportResult:
    """Export an arch (given, or chosen by a search) with the full verification checklist; the
    bundle replaces --out only when it passes (see export/bundle.py)."""
    prof = load_profile(device, trust_command)
    if search_entry is not None:
        arch = search_entry["arch"]
        check_arch(arch, supernet, "the searched arch")
        return export_subnet(arch, prof, out, supernet_dir(supernet), data_dir, search_entry["budget_ms"],
                             _predicted(search_entry), search_entry.get("pareto"))
    if arch is None:
        raise UserError("export needs --search or --arch.")
    check_arch(arch, supernet)
    table = _cached_lut(device, supernet)
    predicted = None
    if table is not None:
        predicted = {"latency_ms": table.predict(arch), "latency_error": table.calibration["fidelity"]}
    return export_subnet(arch, prof, out, supernet_dir(supernet), data_dir, None, predicted)


def _cached_lut(device: str, supernet: str | os.PathLike | None) -> LatencyTable | None:
    net, _ = load_supernet(supernet_dir(supernet))
    name = load_profile(device).name
    try:
        return LatencyTable.load(default_lut_path(name, net.space), space=net.space, device=name)
    except UserError:
        return None


def run(device: str, latency_ms: float, out: str | os.PathLike, seed: int = 0, progress: bool = True,
        data_dir: str | os.PathLike | None = None, supernet: str | os.PathLike | None = None,
        trust_command: bool = False) -> dict[str, Any]:
    """Profile (cached) + search + export; re-searches with a tighter internal budget when the measured
    latency misses the budget (at most 3 attempts). Only the last attempt is verified; the bundle and
    its search.json are swapped into --out together."""
    check_budget(latency_ms)
    prof = load_profile(device, trust_command)
    out_path = check_out_folder(out)
    t0 = time.time()
    table, _, built = profile(device, supernet, progress=progress, trust_command=trust_command)
    floor = table.min_latency()[0]  # the search refuses budgets below this: never retry under it
    t_profile = time.time() - t0
    ex = Exporter(prof, supernet_dir(supernet), data_dir)
    target, attempts = latency_ms, []
    for attempt in range(MAX_EXPORT_ATTEMPTS):
        ts = time.time()
        result = search_devices([device], target, supernet, seed, progress=progress, warn=False,  # said above
                                trust_command=trust_command)
        t_search = time.time() - ts
        entry = result["devices"][ex.profile.name]
        cand = ex.candidate(ArchSpec.from_dict(entry["arch"]), calibrate=False)  # BN calibration only if kept
        timing = ex.measure(cand)
        attempts.append({"search_budget_ms": target, "predicted_ms": entry["predicted_latency_ms"],
                         f"{ex.target.source}_p50_ms": timing.p50_ms})
        if timing.p50_ms <= latency_ms or target <= floor or attempt == MAX_EXPORT_ATTEMPTS - 1:
            break
        target = retry_budget(target, latency_ms, timing.p50_ms, floor)
        log.warning("%s %.3f ms > budget %.3f ms; searching again under %.3f ms", ex.target.source, timing.p50_ms,
                    latency_ms, target)
    result["budget_ms"] = latency_ms
    if not cand.calibrated:  # the bundle's latency is measured on the bundle's own model
        cand = ex.candidate(cand.arch)
        timing = ex.measure(cand)
    res = ex.finish(cand, timing, latency_ms, _predicted(entry))
    res.report["attempts"] = attempts
    res.report["timing_s"] = {"profile": round(t_profile, 1), "lut_built": built, "last_search": round(t_search, 1),
                              "total": round(time.time() - t0, 1)}
    commit_bundle(ex, res, out_path, entry.get("pareto"), {"search.json": result})
    return {"report": res.report, "checks": res.checks, "search": result, "written": res.written}


def check_arch(arch: ArchSpec, supernet: str | os.PathLike | None = None, source: str = "arch") -> None:
    """Refuse an arch outside the supernet's space before anything slow (UserError naming every problem)."""
    net, _ = load_supernet(supernet_dir(supernet))
    net.space.validate(arch, source)


def _predicted(entry: dict[str, Any]) -> dict[str, Any]:
    return {"latency_ms": entry["predicted_latency_ms"], "top1": entry["predicted_top1"],
            "latency_error": entry.get("latency_error"), "top1_error": entry.get("top1_error")}


def retry_budget(target: float, budget: float, measured: float, floor: float) -> float:
    """The next internal search budget after a miss: scaled by budget/measured with a 3 % margin, then
    snapped down onto the grid budget * 0.96**n, so that noise in the measurement mostly leads back to
    the same subnets (whose verification a warm run then finds in the cache)."""
    want = target * budget / measured * 0.97
    n = max(1, math.ceil(math.log(want / budget) / math.log(RETRY_GRID) - 1e-9))
    return max(floor, budget * RETRY_GRID ** n)
