"""ZigZag plumbing: load an accelerator and a mapping (checked, UserError on bad files), cost one layer
through ZigZag's own stages, keep ZigZag quiet, and cache layer costs on disk.

A layer is costed by the stages `get_hardware_performance_zigzag` chains for a non-IMC accelerator
(workload parser, layer iterator, spatial mapping generation, LOMA temporal mappings, cost model, the
minimal-latency reductions), minus the stages that write files (JSON/pickle dumps, the visualisation
that also fails on a fully spatially unrolled layer). ZigZag logs at INFO and warns about every
spatial unrolling it trims; while it runs its logger is held at ERROR and the root logger's state is
restored afterwards (the API itself calls `logging.basicConfig`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from hwofa.common import UserError, atomic_write_json, hwofa_home, read_json
from profiler.backends._zigzag_layers import MAPPING_NAMES, Layer

log = logging.getLogger(__name__)
CACHE_FORMAT = "hwofa-zigzag-cache/1"


def zigzag_version() -> str | None:
    """zigzag-dse's version, or None when it is not installed."""
    try:
        return metadata.version("zigzag-dse")
    except metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def quiet_zigzag() -> Iterator[None]:
    """Hold ZigZag's loggers at ERROR and give the root logger back exactly as it was."""
    root, zz = logging.getLogger(), logging.getLogger("zigzag")
    saved = (root.level, list(root.handlers), zz.level)
    zz.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(saved[0])
        for h in list(root.handlers):
            if h not in saved[1]:
                root.removeHandler(h)
        for h in saved[1]:
            if h not in root.handlers:
                root.addHandler(h)
        zz.setLevel(saved[2])


def _read_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise UserError(f"{what} '{path}' does not exist (or is not a file); check the profile's options.")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} '{path}' is not readable YAML ({exc}).".replace("\n", " ")) from exc


def load_accelerator(path: Path) -> Any:
    """ZigZag's Accelerator for a YAML description; a UserError (one paragraph) when it is not valid."""
    from zigzag.parser.accelerator_factory import AcceleratorFactory
    from zigzag.parser.accelerator_validator import AcceleratorValidator

    data = _read_yaml(path, "accelerator description")
    if not isinstance(data, dict):
        raise UserError(f"accelerator description '{path}' must be a YAML mapping with name, memories and "
                        "operational_array (ZigZag's accelerator format).")
    with quiet_zigzag():
        try:
            validator = AcceleratorValidator(data)
            ok = validator.validate()
            errors = validator.validator.errors
            accelerator = AcceleratorFactory(validator.normalized_data).create() if ok else None
        except Exception as exc:  # ZigZag's factory asserts and raises on inconsistent descriptions
            raise UserError(f"accelerator description '{path}' is not a valid ZigZag accelerator: "
                            f"{type(exc).__name__}: {exc}.") from exc
    if accelerator is None:
        why = errors or "see ZigZag's accelerator format (name, memories, operational_array)"
        raise UserError(f"accelerator description '{path}' is not a valid ZigZag accelerator: {why}.")
    return accelerator


def check_mapping(path: Path) -> list[dict[str, Any]]:
    """The mapping entries; a UserError when the file is not a ZigZag mapping or lacks an entry we use."""
    from zigzag.parser.mapping_validator import MappingValidator

    data = _read_yaml(path, "mapping")
    if not isinstance(data, list) or not all(isinstance(e, dict) and "name" in e for e in data):
        raise UserError(f"mapping '{path}' must be a YAML list of entries with a 'name' (ZigZag's mapping format).")
    with quiet_zigzag():
        validator = MappingValidator(data)
        ok = validator.validate()
    if not ok:
        raise UserError(f"mapping '{path}' is not a valid ZigZag mapping: {validator.validator.errors}.")
    missing = [n for n in MAPPING_NAMES if n not in {e["name"] for e in data}]
    if missing:
        raise UserError(f"mapping '{path}' lacks the entries {missing}: the zigzag target maps depthwise convs, "
                        "element-wise ops and pooling through entries of those names (without their own spatial "
                        "unrolling a depthwise conv runs at near-zero utilisation); 'default' serves Conv and Gemm.")
    return validator.normalized_data


@dataclass(frozen=True)
class LayerCost:
    """What ZigZag says about one layer (cycles at the accelerator's clock)."""

    cycles: float
    ideal_cycles: float
    energy_pj: float
    macs: int
    spatial_utilisation: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # JSON keeps a float exactly: a cached figure is the figure


def cost_layer(layer: Layer, accelerator: Any, mapping: Path, lpf_limit: int) -> LayerCost:
    """One layer through ZigZag's stages (minimal latency over the generated spatial and temporal mappings)."""
    from zigzag.mapping.temporal_mapping import TemporalMappingType
    from zigzag.opt.loma.engine import NoValidLoopOrderingFoundException
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.main import MainStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.parser.workload_parser import WorkloadParserStage
    from zigzag.stages.results.reduce_stages import MinimalLatencyStage
    from zigzag.stages.workload_iterator import WorkloadStage

    stages = [WorkloadParserStage, WorkloadStage, MinimalLatencyStage, SpatialMappingGeneratorStage,
              MinimalLatencyStage, TemporalMappingGeneratorStage, CostModelStage]
    with quiet_zigzag():
        try:
            results = MainStage(stages, accelerator=accelerator, workload=[layer.workload()], mapping=str(mapping),
                                loma_lpf_limit=lpf_limit, loma_show_progress_bar=False, nb_mappings_generated=3,
                                enable_mix_spatial_mapping_generation=False,
                                access_same_data_considered_as_no_access=True,
                                temporal_mapping_type=TemporalMappingType.UNEVEN).run()
        except NoValidLoopOrderingFoundException as exc:
            sizes = dict(zip(layer.spec["loop_dims"], layer.spec["loop_sizes"], strict=True))
            raise UserError(f"ZigZag finds no way to run layer '{layer.node}' ({layer.kind}, loops {sizes}) on "
                            f"accelerator '{accelerator.name}' with the mapping entry '{layer.mapping}': most often "
                            "the layer does not fit the accelerator's memories (e.g. a feature map larger than an "
                            "on-chip buffer with no DRAM above it); give the accelerator larger memories or the "
                            f"model a smaller input (ZigZag: {str(exc).split('. ')[0]}).") from exc
    cme = results[0][0]
    return LayerCost(cycles=float(cme.latency_total2), ideal_cycles=float(cme.ideal_cycle),
                     energy_pj=float(cme.energy_total), macs=int(cme.layer.total_mac_count),
                     spatial_utilisation=float(cme.mac_spatial_utilization))


class LayerCache:
    """Layer costs by what they depend on, in one JSON file per (accelerator, mapping, lpf_limit, ZigZag
    version) under $HWOFA_HOME/zigzag/. Saved atomically, merged with what other processes saved."""

    def __init__(self, stem: str, digest: str, header: dict[str, Any]) -> None:
        self.path = hwofa_home() / "zigzag" / f"{stem}-{digest[:16]}.json"
        self.header = {"format": CACHE_FORMAT, **header}
        self.layers: dict[str, dict[str, Any]] = self._read()
        self.dirty = False

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = read_json(self.path, "zigzag layer cache")
        except UserError as exc:
            log.warning("%s; it is ignored and rebuilt", exc)
            return {}
        ok = isinstance(data, dict) and all(data.get(k) == v for k, v in self.header.items())
        return dict(data["layers"]) if ok and isinstance(data.get("layers"), dict) else {}

    def get(self, key: str) -> LayerCost | None:
        hit = self.layers.get(key)
        try:
            return LayerCost(**hit) if hit is not None else None
        except TypeError:
            return None

    def put(self, key: str, cost: LayerCost) -> None:
        self.layers[key] = cost.to_dict()
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        merged = {**self._read(), **self.layers}
        try:
            atomic_write_json(self.path, {**self.header, "layers": merged})
        except OSError as exc:
            log.warning("cannot write the zigzag layer cache '%s' (%s); layers will be costed again next time",
                        self.path, os.strerror(exc.errno) if exc.errno else exc)
            return
        self.layers, self.dirty = merged, False
