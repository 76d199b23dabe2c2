"""SearchSpace and ArchSpec: the public vocabulary every stage speaks.

A SearchSpace describes what the elastic supernet can become; an ArchSpec is one
choice inside it. Both round-trip through JSON (DESIGN §3) and validate with
messages a user can act on.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from hwofa.common.errors import UserError
from hwofa.common.files import sha256_bytes

ACTIVATIONS = ("relu", "hswish")


@dataclass(frozen=True)
class SearchSpace:
    """Elastic dimensions plus the fixed macro-structure of the network."""

    resolutions: tuple[int, ...] = (20, 24, 28)
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    num_stages: int = 5
    in_channels: int = 1
    num_classes: int = 10
    stem_channels: int = 16
    stem_stride: int = 2
    stage_channels: tuple[int, ...] = (16, 24, 32, 48, 64)
    stage_strides: tuple[int, ...] = (1, 2, 1, 2, 1)
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    stage_act: tuple[str, ...] = ("relu", "relu", "hswish", "hswish", "hswish")
    head_channels: int = 192

    def __post_init__(self) -> None:
        for name in ("resolutions", "kernel_sizes", "expand_ratios", "depths"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)) or min(values) < 1:
                raise UserError(f"search space: '{name}' must be a non-empty, strictly increasing "
                                f"list of positive integers, got {list(values)}.")
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise UserError(f"search space: kernel sizes must be odd, got {list(self.kernel_sizes)}.")
        per_stage = ("stage_channels", "stage_strides", "stage_se", "stage_act")
        for name in per_stage:
            if len(getattr(self, name)) != self.num_stages:
                raise UserError(f"search space: '{name}' has {len(getattr(self, name))} entries "
                                f"but num_stages is {self.num_stages}.")
        bad = [a for a in self.stage_act if a not in ACTIVATIONS]
        if bad:
            raise UserError(f"search space: unknown activation(s) {bad}; use one of {ACTIVATIONS}.")

    # ---- JSON -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        if not isinstance(data, dict):
            raise UserError("search space: expected a JSON object.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"search space: unknown field(s) {unknown}; known fields are {sorted(known)}.")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise UserError(f"search space: {exc}.") from exc

    def space_hash(self) -> str:
        """Stable short hash of the space definition; LUTs and predictors are keyed by it."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return sha256_bytes(blob.encode())[:16]

    # ---- derived structure ------------------------------------------------
    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def stage_in_channels(self, stage: int) -> int:
        return self.stem_channels if stage == 0 else self.stage_channels[stage - 1]

    def block_geometry(self, stage: int, first: bool, resolution: int | None = None) -> BlockGeometry:
        """The one place a block's shape is worked out: the network, its extracted subnets, the LUT keys and
        the profiler's per-block modules all ask here. The first block of a stage carries the stage's stride
        and width change; the others keep both. With `resolution`, the block's input and output feature sizes."""
        out_ch = self.stage_channels[stage]
        in_hw = out_hw = None
        if resolution is not None:
            out_hw = self.feature_size(resolution, stage + 1)
            in_hw = self.feature_size(resolution, stage) if first else out_hw
        return BlockGeometry(in_ch=self.stage_in_channels(stage) if first else out_ch, out_ch=out_ch,
                             stride=self.stage_strides[stage] if first else 1, se=self.stage_se[stage],
                             act=self.stage_act[stage], in_hw=in_hw, out_hw=out_hw)

    def feature_size(self, resolution: int, stage: int) -> int:
        """Spatial size of the input to `stage` (0..num_stages; num_stages means the head)."""
        size = _conv_out(resolution, self.stem_stride)
        for s in range(stage):
            size = _conv_out(size, self.stage_strides[s])
        return size

    def largest(self) -> ArchSpec:
        return self.uniform(max(self.resolutions), max(self.kernel_sizes), max(self.expand_ratios),
                            self.max_depth)

    def smallest(self) -> ArchSpec:
        return self.uniform(min(self.resolutions), min(self.kernel_sizes), min(self.expand_ratios),
                            min(self.depths))

    def uniform(self, resolution: int, kernel_size: int, expand_ratio: int, depth: int) -> ArchSpec:
        block = BlockSpec(kernel_size, expand_ratio)
        return ArchSpec(resolution, tuple(tuple([block] * depth) for _ in range(self.num_stages)))

    def sample(self, rng: random.Random, kernel_sizes: tuple[int, ...] | None = None,
               expand_ratios: tuple[int, ...] | None = None, depths: tuple[int, ...] | None = None,
               resolutions: tuple[int, ...] | None = None) -> ArchSpec:
        """Uniform random arch; the optional tuples restrict a dimension (progressive shrinking)."""
        ks = kernel_sizes or self.kernel_sizes
        es = expand_ratios or self.expand_ratios
        ds = depths or self.depths
        rs = resolutions or self.resolutions
        stages = []
        for _ in range(self.num_stages):
            d = rng.choice(ds)
            stages.append(tuple(BlockSpec(rng.choice(ks), rng.choice(es)) for _ in range(d)))
        return ArchSpec(rng.choice(rs), tuple(stages))

    def validate(self, arch: ArchSpec, source: str = "arch") -> None:
        """Raise one UserError naming everything in `arch` that lies outside this space."""
        problems = []
        if arch.resolution not in self.resolutions:
            problems.append(f"resolution {arch.resolution} is not in the space's resolutions {list(self.resolutions)}")
        if len(arch.stages) != self.num_stages:
            problems.append(f"it has {len(arch.stages)} stages but the space has {self.num_stages}")
        for i, stage in enumerate(arch.stages):
            if len(stage) not in self.depths:
                problems.append(f"stage {i} has depth {len(stage)} (allowed depths {list(self.depths)})")
            for j, block in enumerate(stage):
                if block.kernel_size not in self.kernel_sizes:
                    problems.append(f"stage {i} block {j} has kernel_size {block.kernel_size} "
                                    f"(allowed {list(self.kernel_sizes)})")
                if block.expand_ratio not in self.expand_ratios:
                    problems.append(f"stage {i} block {j} has expand_ratio {block.expand_ratio} "
                                    f"(allowed {list(self.expand_ratios)})")
        if problems:
            raise UserError(f"{source} lies outside the supernet's search space: {_listing(problems)}. "
                            "`hwofa space` prints the space.")


@dataclass(frozen=True)
class BlockGeometry:
    """A block's fixed shape (what its kernel size and expand ratio do not change); see `block_geometry`."""

    in_ch: int
    out_ch: int
    stride: int
    se: bool
    act: str
    in_hw: int | None = None  # feature sizes: None unless a resolution was given
    out_hw: int | None = None


@dataclass(frozen=True)
class BlockSpec:
    kernel_size: int
    expand_ratio: int


@dataclass(frozen=True)
class ArchSpec:
    """One subnet: input resolution plus, per stage, the list of active blocks."""

    resolution: int
    stages: tuple[tuple[BlockSpec, ...], ...] = field(default_factory=tuple)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"resolution": self.resolution,
                "stages": [[{"kernel_size": b.kernel_size, "expand_ratio": b.expand_ratio} for b in s]
                           for s in self.stages]}

    @classmethod
    def from_dict(cls, data: Any, source: str = "arch") -> ArchSpec:
        """Parse an ArchSpec; one UserError lists every malformed part."""
        problems = _arch_problems(data)
        if problems:
            raise UserError(f"{source}: malformed ArchSpec: {_listing(problems)}; {ARCH_HINT}.")
        return cls(data["resolution"], tuple(tuple(BlockSpec(b["kernel_size"], b["expand_ratio"]) for b in stage)
                                             for stage in data["stages"]))

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


ARCH_HINT = ('expected {"resolution": int, "stages": [[{"kernel_size": int, "expand_ratio": int}, ...], ...]} '
             "(a stage's depth is the length of its list)")


def _arch_problems(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return [f"it is {_kind(data)}, not a JSON object"]
    problems = [f"it lacks the field '{k}'" for k in ("resolution", "stages") if k not in data]
    problems += [f"unknown field '{k}'" for k in sorted(set(data) - {"resolution", "stages"})]
    if "resolution" in data and not _is_int(data["resolution"]):
        problems.append(f"'resolution' is {_kind(data['resolution'])}, not an integer")
    stages = data.get("stages", [])
    if not isinstance(stages, list):
        return problems + [f"'stages' is {_kind(stages)}, not a list of stages"]
    for i, stage in enumerate(stages):
        if not isinstance(stage, list):
            problems.append(f"stage {i} is {_kind(stage)}, not a list of blocks")
            continue
        for j, b in enumerate(stage):
            where = f"stage {i} block {j}"
            if not isinstance(b, dict):
                problems.append(f"{where} is {_kind(b)}, not an object")
                continue
            problems += [f"{where} lacks '{k}'" for k in ("kernel_size", "expand_ratio") if k not in b]
            extra = sorted(set(b) - {"kernel_size", "expand_ratio"})
            problems += [f"{where} has the unknown field '{k}'" for k in extra]
            problems += [f"{where} '{k}' is {_kind(b[k])}, not an integer" for k in ("kernel_size", "expand_ratio")
                         if k in b and not _is_int(b[k])]
    return problems


def _kind(x: Any) -> str:
    if isinstance(x, (dict, list, str, bool)) or x is None:
        return {dict: "an object", list: "a list", str: f"the string {json.dumps(x)}", bool: f"the boolean {x}"}.get(
            type(x), "null")
    return f"the number {x!r}"


def _listing(problems: list[str], limit: int = 6) -> str:
    shown = problems[:limit] + ([f"and {len(problems) - limit} more"] if len(problems) > limit else [])
    return "; ".join(shown)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _conv_out(size: int, stride: int) -> int:
    # 'same'-padded odd kernels: ceil(size / stride)
    return (size + stride - 1) // stride
