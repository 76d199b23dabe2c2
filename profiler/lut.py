"""LatencyTable: per-block latency entries of one device, summed and calibrated.

Keys name what a module computes, so identical shapes share an entry:
  stem:r28                        the stem at input resolution 28
  block:c16-24:hw14:s2:k5:e4:se1:relu   an inverted-residual block (in-out channels, input size, ...)
  head:hw4                        the head at feature size 4
  overhead:r28                    one trivial op: the runtime's fixed cost per inference
Prediction: raw = sum(entry - overhead) + overhead, then the calibration `a * raw + b`
fitted on whole subnets measured end to end.
`LatencyTable.gene_costs()` compiles the same prediction into per-choice costs, so a search can
sum array lookups (and update a latency per changed choice) instead of building keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwofa.common import NUMBER, UserError, atomic_write_json, hwofa_home, read_json, require_fields
from supernet import ArchSpec, BlockSpec, SearchSpace

FORMAT = "hwofa-lut/1"


def stem_key(resolution: int) -> str:
    return f"stem:r{resolution}"


def overhead_key(resolution: int) -> str:
    return f"overhead:r{resolution}"


def head_key(space: SearchSpace, resolution: int) -> str:
    return f"head:hw{space.feature_size(resolution, space.num_stages)}"


def block_key(space: SearchSpace, stage: int, first: bool, kernel_size: int, expand_ratio: int,
              resolution: int) -> str:
    g = space.block_geometry(stage, first, resolution)
    return (f"block:c{g.in_ch}-{g.out_ch}:hw{g.in_hw}:s{g.stride}:k{kernel_size}:e{expand_ratio}:"
            f"se{int(g.se)}:{g.act}")


def arch_keys(space: SearchSpace, arch: ArchSpec) -> list[str]:
    """The entries whose sum models `arch` (overhead excluded)."""
    r = arch.resolution
    keys = [stem_key(r)]
    for s, stage in enumerate(arch.stages):
        keys += [block_key(space, s, b == 0, spec.kernel_size, spec.expand_ratio, r) for b, spec in enumerate(stage)]
    return keys + [head_key(space, r)]


def all_entries(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """Every key the space needs, with what to build to measure it."""
    out: dict[str, dict[str, Any]] = {}
    for r in space.resolutions:
        out[overhead_key(r)] = {"kind": "overhead", "resolution": r}
        out[stem_key(r)] = {"kind": "stem", "resolution": r}
        out.setdefault(head_key(space, r), {"kind": "head", "resolution": r})
        for s in range(space.num_stages):
            for first in (True, False):
                for k in space.kernel_sizes:
                    for e in space.expand_ratios:
                        out.setdefault(block_key(space, s, first, k, e, r),
                                       {"kind": "block", "stage": s, "first": first, "kernel_size": k,
                                        "expand_ratio": e, "resolution": r})
    return out


@dataclass(frozen=True)
class GeneCosts:
    """`LatencyTable.predict` as a sum of per-choice costs, indexed by choice indices into the space's
    sorted lists (resolutions, kernel_sizes, expand_ratios):

        predict(arch) = base[r] + sum over stages s, blocks b < depth: block[r][s][min(b, 1)][k * ne + e]

    with ne = len(expand_ratios).
    `base[r]` holds the calibrated overhead, stem, head and intercept at resolution index r; position 0 is a
    stage's first block (stride, width change), position 1 any other."""

    space: SearchSpace
    base: tuple[float, ...]
    block: tuple[tuple[tuple[tuple[float, ...], ...], ...], ...]

    def predict(self, arch: ArchSpec) -> float:
        sp, ne = self.space, len(self.space.expand_ratios)
        r = sp.resolutions.index(arch.resolution)
        lat = self.base[r]
        for s, stage in enumerate(arch.stages):
            for b, spec in enumerate(stage):
                ce = sp.kernel_sizes.index(spec.kernel_size) * ne + sp.expand_ratios.index(spec.expand_ratio)
                lat += self.block[r][s][min(b, 1)][ce]
        return lat


@dataclass
class LatencyTable:
    space: SearchSpace
    header: dict[str, Any]
    entries: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    @property
    def device(self) -> str:
        return self.header["device"]

    def missing(self) -> list[str]:
        return [k for k in all_entries(self.space) if k not in self.entries]

    def raw_ms(self, arch: ArchSpec) -> float:
        o = self.entries[overhead_key(arch.resolution)]["p50_ms"]
        return sum(self.entries[k]["p50_ms"] - o for k in arch_keys(self.space, arch)) + o

    def weight_mb(self, arch: ArchSpec) -> float:
        """Megabytes of weights the subnet streams per inference (the sum of its entries')."""
        return sum(self.entries[k].get("weight_mb", 0.0) for k in arch_keys(self.space, arch))

    def predict(self, arch: ArchSpec) -> float:
        """Calibrated latency in ms: a * raw + c * weight_mb + b (the raw sum where no calibration exists yet)."""
        raw = self.raw_ms(arch)
        if not self.calibration:
            return raw
        cal = self.calibration
        return cal["a"] * raw + cal.get("c", 0.0) * self.weight_mb(arch) + cal["b"]

    def gene_costs(self) -> GeneCosts:
        """The prediction compiled into per-choice costs (equal to `predict` up to float rounding):
        a * (sum(entry - o) + o) + c * sum(weight) + b  =  (a * o + b) + sum(a * (entry - o) + c * weight)."""
        cal = self.calibration or {"a": 1.0, "b": 0.0}
        a, c, b = cal["a"], cal.get("c", 0.0), cal["b"]
        sp = self.space
        base, block = [], []
        for r in sp.resolutions:
            o = self.entries[overhead_key(r)]["p50_ms"]
            def cost(key: str, o: float = o) -> float:
                e = self.entries[key]
                return a * (e["p50_ms"] - o) + c * e.get("weight_mb", 0.0)
            base.append(a * o + b + cost(stem_key(r)) + cost(head_key(sp, r)))
            block.append(tuple(tuple(tuple(cost(block_key(sp, s, first, k, e, r))
                                           for k in sp.kernel_sizes for e in sp.expand_ratios)
                                     for first in (True, False))
                               for s in range(sp.num_stages)))
        return GeneCosts(sp, tuple(base), tuple(block))

    def min_latency(self) -> tuple[float, ArchSpec]:
        """Exact minimum of `predict` over the space: the prediction is a sum of per-entry costs,
        so each stage's cheapest first block, other block and depth can be chosen on their own."""
        cal = self.calibration or {}
        a, c = cal.get("a", 1.0), cal.get("c", 0.0)
        if a <= 0:
            raise UserError(f"LUT for '{self.device}': its calibration slope is not positive; rebuild it.")
        best: tuple[float, ArchSpec] | None = None
        sp = self.space
        for r in sp.resolutions:
            o = self.entries[overhead_key(r)]["p50_ms"]
            def cost(key: str, o: float = o) -> float:
                e = self.entries[key]
                return a * (e["p50_ms"] - o) + c * e.get("weight_mb", 0.0)
            stages = []
            for s in range(sp.num_stages):
                first = min(((cost(block_key(sp, s, True, k, e, r)), BlockSpec(k, e))
                             for k in sp.kernel_sizes for e in sp.expand_ratios), key=lambda t: t[0])
                rest = min(((cost(block_key(sp, s, False, k, e, r)), BlockSpec(k, e))
                            for k in sp.kernel_sizes for e in sp.expand_ratios), key=lambda t: t[0])
                d = min(sp.depths, key=lambda d: first[0] + (d - 1) * rest[0])
                stages.append((first[1],) + (rest[1],) * (d - 1))
            arch = ArchSpec(r, tuple(stages))
            lat = self.predict(arch)
            if best is None or lat < best[0]:
                best = (lat, arch)
        assert best is not None
        return best

    # ---- files ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "header": self.header, "entries": self.entries,
                "calibration": self.calibration}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, space: SearchSpace | None = None, device: str | None = None,
             require_complete: bool = True) -> LatencyTable:
        """Read and check a LUT; `space`/`device` given means they must match its header."""
        path = Path(path)
        data = read_json(path, "LUT")
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            raise UserError(f"LUT '{path}' is not a hwofa latency table (format '{FORMAT}'); it may be corrupt. "
                            "Delete it and run `hwofa profile` again.")
        require_fields(data, {"header": dict}, "LUT", path)
        header = data["header"]
        try:
            lut_space = SearchSpace.from_dict(header["space"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"LUT '{path}' has no valid search space in its header; rebuild it.") from exc
        if space is not None and lut_space.space_hash() != space.space_hash():
            raise UserError(f"LUT '{path}' was built for search space {lut_space.space_hash()} but the supernet's "
                            f"space is {space.space_hash()}; run `hwofa profile` for this supernet.")
        if device is not None and header.get("device") != device:
            raise UserError(f"LUT '{path}' belongs to device '{header.get('device')}', not '{device}'.")
        calibration = data.get("calibration")
        if calibration is not None:
            require_fields(calibration, {"a": NUMBER, "b": NUMBER, "fidelity": dict}, "LUT calibration", path)
            require_fields(calibration["fidelity"], {k: NUMBER for k in ("within_10pct", "mean_abs_pct_error",
                                                                         "max_abs_pct_error", "spearman", "n")},
                           "LUT calibration fidelity", path)
        table = cls(lut_space, header, data["entries"], calibration)
        bad = [k for k, v in table.entries.items()
               if not isinstance(v, dict) or not isinstance(v.get("p50_ms"), NUMBER) or v["p50_ms"] < 0]
        if bad:
            raise UserError(f"LUT '{path}' has malformed entries (e.g. '{bad[0]}'); delete it and profile again.")
        if require_complete and (table.missing() or not table.calibration):
            raise UserError(f"LUT '{path}' is incomplete ({len(table.missing())} entries missing"
                            f"{', no calibration' if not table.calibration else ''}); run `hwofa profile "
                            f"--device {header.get('device')}` to finish it (it resumes).")
        return table


def quality_warning(table: LatencyTable) -> str | None:
    """Why a table is degraded (None when its build met the profile's fidelity goal)."""
    q = table.header.get("quality") or {}
    return q.get("reason", "it did not reach its fidelity goal") if q.get("status") == "degraded" else None


def default_lut_path(device: str, space: SearchSpace) -> Path:
    return hwofa_home() / "luts" / device / f"{space.space_hash()}.json"
