"""The target of a device, ready to cost models outside a LUT build (export, benchmarks)."""

from __future__ import annotations

import json

from profiler.backends import Target, get_target
from profiler.lut import default_lut_path
from profiler.profiles import DeviceProfile
from profiler.provenance import header_stale_reason
from supernet import SearchSpace


def device_target(profile: DeviceProfile, space: SearchSpace | None = None) -> Target:
    """`get_target(profile)` carrying over the state of the device's cached LUT for `space` (a runtime's
    canary reference, measured over thousands of rounds), so figures are on the same scale as the table's.
    A table made for another CPU, runtime or profile carries nothing over."""
    target = get_target(profile)
    if space is not None:
        try:
            header = json.loads(default_lut_path(profile.name, space).read_text())["header"]
        except (OSError, ValueError, KeyError, TypeError):
            return target
        if isinstance(header, dict) and header_stale_reason(header, profile, target) is None:
            target.restore(header.get("target_state") or {})
    return target
