"""A device's latency lookup table for a space: reused when cached and fresh, else (re)measured."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from hwofa.common import UserError
from hwofa.session import supernet_dir
from profiler import (
    DeviceProfile,
    LatencyTable,
    Target,
    build_lut,
    default_lut_path,
    get_target,
    load_profile,
    quality_warning,
    stale_reason,
)
from supernet import SearchSpace, load_supernet

log = logging.getLogger(__name__)


def profile(device: str, supernet: str | os.PathLike | None = None, lut: str | os.PathLike | None = None,
            rebuild: bool = False, progress: bool = True, warn: bool = True,
            trust_command: bool = False) -> tuple[LatencyTable, Path, bool]:
    """The device's LUT for the supernet's space: reused when cached and fresh, else (re)measured.

    Returns (table, path, whether anything was measured). `trust_command` lets a profile from
    outside the package run its external command (--trust-device-command).
    """
    prof = load_profile(device, trust_command)
    net, _ = load_supernet(supernet_dir(supernet))
    return device_table(prof, net.space, lut, rebuild, progress, warn)


def device_table(prof: DeviceProfile, space: SearchSpace, lut: str | os.PathLike | None = None,
                 rebuild: bool = False, progress: bool = True, warn: bool = True) -> tuple[LatencyTable, Path, bool]:
    """`profile` for a loaded space (a run loads its supernet once)."""
    target = get_target(prof)  # a target that cannot run here, or not at its precision: a clear error, before measuring
    path = Path(lut) if lut is not None else default_lut_path(prof.name, space)
    if path.is_dir():
        raise UserError(f"--lut '{path}' is a folder; give the path of a LUT file (e.g. {path / 'lut.json'}).")
    if path.is_file() and rebuild:
        _refuse_foreign_lut(path, prof.name, space)
    if not rebuild:
        table = cached_table(prof, target, space, path, hint_lut=lut is not None)
        if table is not None:
            if warn:
                warn_if_degraded(table, prof.name)
            return table, path, False
    table = build_lut(prof, space, path, rebuild=rebuild, progress=progress)
    if warn:
        warn_if_degraded(table, prof.name)
    return table, path, True


def cached_table(prof: DeviceProfile, target: Target, space: SearchSpace, path: Path | None = None,
                 hint_lut: bool = False) -> LatencyTable | None:
    """The cached table when it is complete, calibrated and still holds for this target; else None."""
    path = path or default_lut_path(prof.name, space)
    if not path.is_file():
        return None
    try:
        table = LatencyTable.load(path, space=space, device=prof.name, require_complete=False)
    except UserError as exc:
        raise UserError(f"{exc} To measure it again, run `hwofa profile --device {prof.name} --rebuild"
                        f"{f' --lut {path}' if hint_lut else ''}`; the file is replaced only once the "
                        "new table is complete.") from None
    if not table.missing() and table.calibration and stale_reason(table, prof, target) is None:
        return table
    return None


def warn_if_degraded(table: LatencyTable, device: str) -> None:
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
