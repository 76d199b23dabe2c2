"""search.json: read and checked (format, the supernet and predictor it was made with), its device
entries, and the fronts it keeps (a later budget is answered from them without searching again)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from hwofa.common import NUMBER, UserError, atomic_write_json, json_type, read_json, require_fields, sha256_file
from hwofa.session import Session
from profiler import load_profile
from supernet import ArchSpec

log = logging.getLogger(__name__)
SEARCH_FORMAT = "hwofa-search/2"
SEARCH_FORMATS = ("hwofa-search/1", SEARCH_FORMAT)  # /1: one budget for every device, at the top level


def write_search(path: str | os.PathLike, result: dict[str, Any]) -> None:
    atomic_write_json(path, result)


def read_search_file(path: str | os.PathLike, session: Session | None = None, what: str = "search",
                     supernet: str | os.PathLike | None = None) -> dict[str, Any]:
    """A whole search.json, its format and fields checked, and its inputs against the session's supernet."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise UserError(f"{what}: '{path}' holds {json_type(data)}, not a hwofa search result (a JSON object "
                        f"with format '{SEARCH_FORMAT}', written by `hwofa search` or `hwofa run`).")
    if data.get("format") not in SEARCH_FORMATS:
        found = f"its format is {json.dumps(data['format'])}" if "format" in data else "it has no 'format' field"
        raise UserError(f"{what}: '{path}' is not a hwofa search result: {found}, expected '{SEARCH_FORMAT}'. "
                        "Pass a search.json written by `hwofa search` or `hwofa run`.")
    v1 = data["format"] == SEARCH_FORMATS[0]
    require_fields(data, {"inputs": dict, "devices": dict, **({"budget_ms": NUMBER} if v1 else {})}, what, path)
    session = session or Session.open(supernet)
    if data["inputs"].get("supernet_sha256") != session.meta.weights_sha256 or \
            data["inputs"].get("space_hash") != session.space.space_hash():
        raise UserError(f"{what}: '{path}' was made with another supernet (sha256 "
                        f"{str(data['inputs'].get('supernet_sha256', '?'))[:12]}…); pass the matching --supernet.")
    return data


def read_search(path: str | os.PathLike, device: str, supernet: str | os.PathLike | None = None,
                session: Session | None = None) -> dict[str, Any]:
    """The device's entry of a search.json (with its `budget_ms`, and `arch` as an ArchSpec), checked
    against the supernet it claims to come from."""
    device = load_profile(device).name  # results are keyed by the profile's name, also for a YAML path
    data = read_search_file(path, session, supernet=supernet)
    if device not in data["devices"]:
        raise UserError(f"search: '{path}' has no result for device '{device}'; it has "
                        f"{', '.join(data.get('devices', {})) or 'none'}.")
    v1 = data["format"] == SEARCH_FORMATS[0]
    entry = data["devices"][device]
    require_fields(entry, {"arch": dict, "predicted_latency_ms": NUMBER, "predicted_top1": NUMBER,
                           **({} if v1 else {"budget_ms": NUMBER})}, f"search (device '{device}')", path)
    arch = ArchSpec.from_dict(entry["arch"], source=f"search '{path}' (device '{device}')")
    return {**entry, "budget_ms": data["budget_ms"] if v1 else entry["budget_ms"], "arch": arch}


def kept_fronts(path: str | os.PathLike, session: Session, luts: dict[str, Any]) -> dict[str, Any]:
    """The fronts an earlier search.json kept, by device (`luts`: device -> the LUT path it is searched
    on now). Refused when made with another supernet or predictor; a device whose LUT changed since, or
    that the file lacks, is left out (searched again)."""
    import evolve

    data = read_search_file(path, session, what="--fronts")
    if data["inputs"].get("predictor_sha256") != session.inputs()["predictor_sha256"]:
        raise UserError(f"--fronts: '{path}' was searched with another accuracy predictor; its fronts do not hold "
                        "for this one. Search again (leave out --fronts).")
    out = {}
    for device, lut in luts.items():
        entry = data["devices"].get(device)
        if not isinstance(entry, dict) or "front" not in entry:
            log.warning("--fronts: '%s' keeps no front of '%s'; searching it", path, device)
        elif (entry.get("lut") or {}).get("sha256") != sha256_file(lut):
            log.warning("--fronts: the LUT of '%s' changed since '%s' was searched; searching it again", device, path)
        else:
            out[device] = evolve.Front.from_dict(entry["front"], f"--fronts '{path}' (device '{device}')")
    return out
