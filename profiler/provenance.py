"""What a LUT's figures depend on (host, runtime, profile, space) and when a stored table is stale."""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from profiler.profiles import DeviceProfile
from supernet import SearchSpace


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


def depends_on(target: Any) -> dict[str, Any]:
    """The target's own provenance, plus the int8 settings when its profile runs int8."""
    facts = dict(target.depends_on())
    if target.profile.precision == "int8":
        from profiler.precision import settings_for

        facts["int8"] = settings_for(target).to_dict()
    return facts


def make_header(profile: DeviceProfile, space: SearchSpace, target: Any) -> dict[str, Any]:
    """A LUT header: the device, its profile, what the target's figures depend on, the space."""
    return {"device": profile.name, "profile": profile.to_dict(), "profile_digest": profile.digest(),
            "target": depends_on(target), "kind": target.kind, "source": target.source,
            "runtime": {"name": profile.backend, "version": target.version()}, "host": host_info(),
            "protocol": asdict(profile.timing), "space_hash": space.space_hash(), "space": space.to_dict(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "build_seconds": 0.0}


def stale_reason(table: Any, profile: DeviceProfile, target: Any) -> str | None:
    """Why a stored table may not be reused for `profile` here (None: reusable): the profile, or
    anything the target says its figures depend on (CPU model, runtime or model version,
    accelerator description, the command and the device it reports), changed."""
    return header_stale_reason(table.header, profile, target)


def header_stale_reason(h: dict[str, Any], profile: DeviceProfile, target: Any) -> str | None:
    """`stale_reason` from a LUT header alone."""
    if h.get("profile_digest") != profile.digest():
        return "the device profile changed"
    was, now = h.get("target") or {}, depends_on(target)
    changed = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    if changed:
        k = changed[0]
        return f"what its figures depend on changed ({k}: {was.get(k)} -> {now.get(k)})"
    return None
