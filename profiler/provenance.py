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


def make_header(profile: DeviceProfile, space: SearchSpace, runtime_version: str) -> dict[str, Any]:
    return {"device": profile.name, "profile": profile.to_dict(), "profile_digest": profile.digest(),
            "runtime": {"name": profile.backend, "version": runtime_version}, "host": host_info(),
            "protocol": asdict(profile.timing), "space_hash": space.space_hash(), "space": space.to_dict(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "build_seconds": 0.0}


def stale_reason(table: Any, profile: DeviceProfile, runtime_version: str) -> str | None:
    """Why a stored table may not be reused for `profile` on this machine (None: reusable)."""
    h = table.header
    if h.get("profile_digest") != profile.digest():
        return "the device profile changed"
    if h.get("runtime", {}).get("version") != runtime_version:
        return f"the runtime changed ({h.get('runtime', {}).get('version')} -> {runtime_version})"
    if h.get("host", {}).get("cpu") != host_info()["cpu"]:
        return f"it was measured on another CPU ({h.get('host', {}).get('cpu')})"
    return None
