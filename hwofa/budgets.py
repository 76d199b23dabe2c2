"""Per-device latency budgets: `--device D[=MS]` read and checked before any slow work.

A device named with `=MS` has its own budget; one named without uses `--latency-ms`. Every
problem is a UserError naming the device: a budget that is not a positive number of ms, a
device with no budget at all, a device named twice, and (once its LUT is at hand) a budget
below the smallest latency the device can reach.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hwofa.common import UserError
from profiler import DeviceProfile, LatencyTable, load_profile


@dataclass(frozen=True)
class DeviceBudget:
    """One device of a run: as the user named it, its profile, and its budget in ms."""

    given: str
    profile: DeviceProfile
    budget_ms: float

    @property
    def name(self) -> str:
        return self.profile.name  # a device is named by its profile's file stem everywhere else


def split_device(text: str) -> tuple[str, float | None]:
    """'D=MS' -> (D, MS); 'D' -> (D, None). A budget that is not a positive number is a UserError
    naming the device."""
    if "=" not in text:
        return text, None
    device, _, ms = text.rpartition("=")
    if not device:
        raise UserError(f"--device '{text}' names no device before '='; write --device D=MS, e.g. "
                        "--device cpu-onnxruntime=0.3.")
    try:
        value = float(ms)
    except ValueError:
        raise UserError(f"--device '{text}': the budget of '{device}' ('{ms}') is not a number of milliseconds; "
                        f"write --device {device}=0.3.") from None
    check_budget(value, f"the budget of '{device}'")
    return device, value


def check_budget(latency_ms: float, what: str = "--latency-ms") -> None:
    if not (isinstance(latency_ms, (int, float)) and math.isfinite(latency_ms) and latency_ms > 0):
        raise UserError(f"{what} must be a positive number of milliseconds, got {latency_ms}.")


def device_budgets(devices: str | Sequence[str], latency_ms: float | None = None,
                   trust_command: bool = False) -> list[DeviceBudget]:
    """Every device with its budget, in the order given; refused (UserError) before anything slow."""
    if isinstance(devices, str):
        devices = [devices]
    if not devices:
        raise UserError("give at least one --device.")
    if latency_ms is not None:
        check_budget(latency_ms)
    out: list[DeviceBudget] = []
    for text in devices:
        device, own = split_device(text)
        budget = own if own is not None else latency_ms
        if budget is None:
            raise UserError(f"device '{device}' has no latency budget: give it its own (--device {device}=MS) or "
                            "give --latency-ms for every device named without one.")
        prof = load_profile(device, trust_command)  # an unknown device lists the close names
        twice = [b for b in out if b.name == prof.name]
        if twice:
            raise UserError(f"device '{prof.name}' is named twice (--device {twice[0].given} and --device {text}); "
                            "name each device once, with its own budget if it needs one.")
        out.append(DeviceBudget(text, prof, float(budget)))
    return out


def check_feasible(device: DeviceBudget, table: LatencyTable) -> None:
    """A budget below the device's smallest reachable (predicted) latency: UserError naming both."""
    lo, arch = table.min_latency()
    if device.budget_ms < lo:
        raise UserError(f"infeasible budget for '{device.name}': {device.budget_ms:g} ms is below the smallest "
                        f"latency reachable on that device, {lo:.4f} ms (predicted for {arch.key()}); give it at "
                        f"least that (--device {device.name}={_round_up(lo)}).")


def _round_up(ms: float) -> str:
    """A budget a little above `ms` that reads well (3 significant digits, rounded up)."""
    digits = max(0, 2 - math.floor(math.log10(ms))) if ms > 0 else 3
    return f"{math.ceil(ms * 10 ** digits) / 10 ** digits:g}"
