"""An FPGA-style accelerator as a cost model: ZigZag (KU Leuven's DNN accelerator design-space model).

The profile names a ZigZag accelerator description and a mapping (device_profiles/accelerators/);
each model is read layer by layer by our own ONNX walker (`_zigzag_layers`: int8 QDQ or fp32 graphs,
every op costed or named as fused), every layer is costed through ZigZag (`_zigzag_engine`), and the
cycles are summed: latency = cycles / clock. The figure is *modelled*, never measured (DESIGN §5).

Profile options (paths relative to the profile YAML's folder, or absolute):

    accelerator: accelerators/dpu-b4096.yaml          # ZigZag accelerator description
    mapping: accelerators/dpu-b4096.mapping.yaml      # entries default, depthwise, elementwise, pooling
    clock_mhz: 300                                    # cycles -> ms
    lpf_limit: 2                                      # LOMA's loop-prime-factor limit (6 is ~10x slower, <1 %)

Layer costs are cached by what they depend on (layer shape and op type, mapping entry, the accelerator
and mapping files' hashes, lpf_limit, ZigZag's version) under $HWOFA_HOME/zigzag/, so a layer shape
shared by several LUT entries, subnets or runs is costed once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hwofa.common import UserError, sha256_file
from profiler.backends._zigzag_engine import (
    CACHE_FORMAT,
    LayerCache,
    LayerCost,
    check_mapping,
    cost_layer,
    load_accelerator,
    zigzag_version,
)
from profiler.backends._zigzag_layers import Layer, onnx_layers
from profiler.backends.base import ModelSource, OnDone, Target
from profiler.precision import QuantSettings
from profiler.profiles import DeviceProfile
from profiler.timing import Timing

log = logging.getLogger(__name__)
OPTIONS = ("accelerator", "mapping", "clock_mhz", "lpf_limit")
MAC_KINDS = ("conv", "depthwise", "gemm")
SAVE_EVERY_S = 2.0


@dataclass(frozen=True)
class ZigZagConfig:
    """The profile's options, checked: resolved files with their hashes, the clock, LOMA's limit."""

    accelerator: Path
    mapping: Path
    clock_mhz: float
    lpf_limit: int
    accelerator_sha256: str
    mapping_sha256: str


def read_config(options: dict[str, Any], base: Path, source: str) -> ZigZagConfig:
    """Check a zigzag profile's options; every problem is a one-paragraph UserError naming the profile."""
    where = f"device profile '{source}'"
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"{where}: unknown option(s) {unknown} for the zigzag backend; known options: {list(OPTIONS)}.")
    files = {}
    for key in ("accelerator", "mapping"):
        value = options.get(key)
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}: options.{key} must be the path of a ZigZag {key} YAML file (relative to "
                            f"the profile's folder '{base}', or absolute); got {value!r}.")
        path = Path(value).expanduser()
        files[key] = path if path.is_absolute() else base / path
    clock = options.get("clock_mhz")
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not 0 < clock <= 10_000:
        raise UserError(f"{where}: options.clock_mhz must be the accelerator's clock in MHz (a number in "
                        f"(0, 10000]); got {clock!r}.")
    lpf = options.get("lpf_limit", 2)
    if isinstance(lpf, bool) or not isinstance(lpf, int) or not 1 <= lpf <= 12:
        raise UserError(f"{where}: options.lpf_limit must be an integer from 1 to 12 (2 is the default; 6 is "
                        f"~10x slower for <1 % difference); got {lpf!r}.")
    for key, path in files.items():
        if not path.is_file():
            raise UserError(f"{where}: the {key} file '{path}' (options.{key}) does not exist or is not a file; "
                            "paths are relative to the profile's folder.")
    return ZigZagConfig(files["accelerator"], files["mapping"], float(clock), lpf,
                        sha256_file(files["accelerator"]), sha256_file(files["mapping"]))


@dataclass(frozen=True)
class ModelCost:
    """One model's layers and their ZigZag costs."""

    layers: list[tuple[Layer, LayerCost]]
    fused: dict[str, int]

    @property
    def cycles(self) -> float:
        return sum(c.cycles for _, c in self.layers)


class ZigZagTarget(Target):
    name = "zigzag"
    kind = "cost-model"
    source = "modelled"
    precisions = ("int8",)
    # int8 accelerators (the DPU's Vitis AI flow among them) use symmetric int8 activations; the costing
    # itself looks through Q/DQ, so the settings only shape the exported model
    int8_settings = QuantSettings(activations="int8", symmetric_activations=True)

    def __init__(self, profile: DeviceProfile) -> None:
        super().__init__(profile)
        self._config: ZigZagConfig | None = None
        self._accelerator: Any = None
        self._cache: LayerCache | None = None
        self.evaluated = 0  # layers costed through ZigZag (not from the cache) by this target

    # ---- what it is ----------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("zigzag") is None or zigzag_version() is None:
            return False, "the ZigZag cost model is not installed (pip install 'hwofa[fpga]', i.e. zigzag-dse and six)"
        try:
            self.accelerator  # noqa: B018 - checks the options, the accelerator and the mapping
        except UserError as exc:
            return False, str(exc).rstrip(".")
        return True, ""

    def version(self) -> str:
        return zigzag_version() or "absent"

    def label(self) -> str:
        return f"modelled: zigzag-dse {self.version()}"

    @property
    def config(self) -> ZigZagConfig:
        if self._config is None:
            p = self.profile
            base = Path(p.path).resolve().parent if p.path else Path.cwd()
            self._config = read_config(dict(p.options), base, p.path or p.name)
        return self._config

    def depends_on(self) -> dict[str, Any]:
        c = self.config
        return {"target": self.name, "version": self.version(), "accelerator_sha256": c.accelerator_sha256,
                "mapping_sha256": c.mapping_sha256, "clock_mhz": c.clock_mhz, "lpf_limit": c.lpf_limit}

    def describe(self) -> str:
        c = self.config
        return (f"zigzag {self.version()} model of {self.accelerator.name} ({c.accelerator.name}) at "
                f"{c.clock_mhz:g} MHz, {self.profile.precision}, batch {self.profile.batch_size} (modelled)")

    @property
    def accelerator(self) -> Any:
        if self._accelerator is None:
            self._accelerator = load_accelerator(self.config.accelerator)
            check_mapping(self.config.mapping)
        return self._accelerator

    @property
    def cache(self) -> LayerCache:
        if self._cache is None:
            c, v = self.config, self.version()
            header = {"zigzag": v, "accelerator_sha256": c.accelerator_sha256, "mapping_sha256": c.mapping_sha256,
                      "lpf_limit": c.lpf_limit}
            digest = hashlib.sha256(json.dumps([CACHE_FORMAT, header], sort_keys=True).encode()).hexdigest()
            self._cache = LayerCache(c.accelerator.stem, digest, header)
        return self._cache

    # ---- costing -------------------------------------------------------------
    def model_cost(self, model: bytes) -> ModelCost:
        """Every layer of the model with its cost (from the cache, or through ZigZag)."""
        graph = onnx_layers(model, self.profile.batch_size)
        out = []
        for layer in graph.layers:
            cost = self.cache.get(layer.key)
            if cost is None:
                cost = cost_layer(layer, self.accelerator, self.config.mapping, self.config.lpf_limit)
                self.cache.put(layer.key, cost)
                self.evaluated += 1
            out.append((layer, cost))
        return ModelCost(out, graph.fused)

    def ms(self, cycles: float) -> float:
        return cycles / (self.config.clock_mhz * 1e3)

    def cost_many(self, models: dict[str, ModelSource], rng: random.Random, on_done: OnDone | None = None,
                  progress: bool = True, desc: str = "measure", deadline: float | None = None) -> dict[str, Timing]:
        """Modelled latency of every model. The figure is exact, so `rng` and `deadline` change nothing:
        a repeat costs the same layers again, from the cache."""
        results: dict[str, Timing] = {}
        saved = time.monotonic()
        with tqdm(total=len(models), desc=f"{desc} (zigzag)", unit="model", disable=not progress,
                  leave=False) as bar:
            try:
                for key, source in models.items():
                    ms = self.ms(self.model_cost(source()).cycles)
                    results[key] = Timing(p50_ms=ms, p90_ms=ms, n=1, cv=0.0)
                    if time.monotonic() - saved > SAVE_EVERY_S:
                        self.cache.save()
                        saved = time.monotonic()
                    if on_done is not None:
                        on_done(key, results[key], [])
                    bar.update()
            finally:
                if self._cache is not None:
                    self._cache.save()
        return results

    def detail(self, model: bytes) -> dict[str, Any]:
        """Cycles, per-layer-type cycle totals and utilisation, energy (ZigZag's estimate) for model.json."""
        cost = self.model_cost(model)
        self.cache.save()
        lanes = self.accelerator.operational_array.total_unit_count
        by_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"cycles": 0.0, "ops": 0, "layers": 0})
        for layer, c in cost.layers:
            k = by_kind[layer.kind]
            k["cycles"] += c.cycles
            k["ops"] += c.macs
            k["layers"] += 1
        total = cost.cycles
        mac_ops = sum(by_kind[k]["ops"] for k in MAC_KINDS if k in by_kind)
        return {"cycles": round(total, 1), "latency_ms": round(self.ms(total), 6), "clock_mhz": self.config.clock_mhz,
                "accelerator": self.accelerator.name, "mac_units": lanes, "macs": int(mac_ops),
                "mac_utilisation": round(mac_ops / (total * lanes), 4) if total else 0.0,
                "cycles_by_type": {k: round(v["cycles"], 1) for k, v in sorted(by_kind.items())},
                "utilisation_by_type": {k: round(v["ops"] / (v["cycles"] * lanes), 4) if v["cycles"] else 0.0
                                        for k, v in sorted(by_kind.items())},
                "layers_by_type": {k: int(v["layers"]) for k, v in sorted(by_kind.items())},
                "fused_ops": dict(sorted(cost.fused.items())),
                "energy_uj": round(sum(c.energy_pj for _, c in cost.layers) * 1e-6, 4),
                "source": self.label()}
