"""CUDA plumbing shared by the GPU targets (torch-cuda, TensorRT): what the GPU is, how it runs now,
and the one way work is timed on it.

- `gpu_facts()`: what a GPU figure depends on (GPU name, compute capability, driver, CUDA, cuDNN,
  torch): a LUT's provenance, compared for staleness. The CPU is not part of it.
- `gpu_state()`: clocks, temperature, power and performance state now (nvidia-ml-py when importable):
  recorded before and after a build, never part of staleness, never changed (no locking or resetting).
- `DeviceRunner`: a piece of enqueued GPU work (a CUDA graph replay, a TensorRT enqueue) that times
  itself with CUDA events (`time_round`), several enqueues per event pair, the inputs already resident
  on the device and nothing copied to or from the host inside the timed region. `timing.time_round`
  hands it the round, so the one timing routine (interleaving, canary, estimate) is unchanged.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from profiler.profiles import TimingProtocol
from profiler.timing import Round, summarize_round

log = logging.getLogger(__name__)

SAMPLE_MS = 0.25  # an event pair spans at least this much GPU time (event resolution is ~0.5 us)
MIN_REPLAYS, MAX_REPLAYS = 3, 200  # enqueues per event pair
SLEEP_MARGIN = 2.0  # the GPU spins this many times the host's enqueue time before each sample


# ---- what the GPU is, and how it runs now ---------------------------------------------------------
def gpu_facts(index: int = 0) -> dict[str, Any]:
    """What a figure measured on GPU `index` depends on (a LUT built on another GPU, driver or CUDA is stale)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "gpu_memory_gib": round(props.total_memory / 2**30, 1), "driver": driver_version(),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "torch": torch.__version__}


def driver_version() -> str:
    """The NVIDIA driver's version: from NVML (nvidia-ml-py) when importable, else the kernel module's."""
    nvml = _nvml()
    if nvml is not None:
        v = nvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", text)
    return m.group(1) if m else "unknown"


def gpu_state(index: int = 0) -> dict[str, Any]:
    """Clocks (MHz), temperature (C), power (W) and performance state of GPU `index` now; only read."""
    nvml = _nvml()
    if nvml is None:
        return {"note": "nvidia-ml-py is not installed: clocks and temperature not recorded"}
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    read = {"sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
            "max_sm_clock_mhz": lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM),
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
            "power_w": lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000,
            "pstate": lambda: f"P{nvml.nvmlDeviceGetPerformanceState(h)}",
            "throttle_reasons": lambda: hex(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h))}
    state: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for key, fn in read.items():
        try:
            state[key] = fn()
        except Exception as exc:  # noqa: BLE001 - NVML answers NotSupported for some fields on some boards
            state[key] = f"n/a ({type(exc).__name__})"
    return state


@functools.lru_cache(maxsize=1)
def _nvml() -> Any:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - no driver, or NVML cannot talk to it
        log.info("NVML unavailable: %s", exc)
        return None
    return pynvml


class OnGpu:
    """Mixin for a target on an NVIDIA GPU: its provenance is the GPU's (`gpu_facts`, not the CPU), its
    label names the GPU, and its state carries the GPU's clocks and temperature before and after."""

    _gpu_before: dict[str, Any] | None = None

    def depends_on(self) -> dict[str, Any]:
        return {"target": self.name, "version": self.version(), **gpu_facts()}

    def label(self) -> str:
        return f"measured: {self.name} {self.version()} on {gpu_facts()['gpu']}"

    def state(self) -> dict[str, Any]:
        s = super().state()
        if self._gpu_before is not None:
            s["gpu"] = {"before": self._gpu_before, "after": gpu_state()}
        return s

    def note_gpu_state(self) -> None:
        """Record the GPU's state before the first measurement (only read; clocks are never set)."""
        if self._gpu_before is None:
            self._gpu_before = gpu_state()


# ---- summarising event samples (plain numbers: testable without a GPU) ---------------------------------
def per_replay_ms(elapsed_ms: list[float], replays: int) -> list[float]:
    """Each event pair's elapsed time spread over the `replays` enqueues between its two events."""
    if replays < 1:
        raise ValueError("an event pair spans at least one replay")
    return [e / replays for e in elapsed_ms]


def summarize_events(elapsed_ms: list[float], replays: int) -> Round:
    """A round from event pairs: median, p90 and robust CV of the per-replay times, as `timing.summarize_round`."""
    return summarize_round([ms / 1e3 for ms in per_replay_ms(elapsed_ms, replays)])


def replays_for(one_ms: float) -> int:
    """Enqueues per event pair so that a pair spans >= SAMPLE_MS of GPU time (within [MIN, MAX]_REPLAYS)."""
    if not np.isfinite(one_ms) or one_ms <= 0:
        return MAX_REPLAYS
    return int(min(MAX_REPLAYS, max(MIN_REPLAYS, np.ceil(SAMPLE_MS / one_ms))))


def sleep_cycles(enqueue_s: float, replays: int, cycles_per_ms: float) -> int:
    """GPU spin before a sample, long enough for the host to queue all its enqueues, so that they run
    back to back on the GPU and the events time the GPU, not the host's launch rate."""
    return int(SLEEP_MARGIN * enqueue_s * 1e3 * replays * cycles_per_ms)


# ---- timing on the device ------------------------------------------------------------------------------
class DeviceRunner:
    """Enqueued GPU work on its own stream. Calling it runs the work once and waits (warm-up);
    `time_round` times it with CUDA events. `keep` holds what the work needs alive (graph, buffers)."""

    def __init__(self, enqueue: Callable[[], None], stream: Any, keep: Any = None) -> None:
        self.enqueue, self.stream, self.keep = enqueue, stream, keep
        self.replays: int | None = None
        self.spin = 0

    def __call__(self) -> None:
        import torch

        with torch.cuda.stream(self.stream):
            self.enqueue()
        self.stream.synchronize()

    def time_round(self, protocol: TimingProtocol) -> Round:
        """>= round_runs event pairs and >= round_s seconds; each pair around `replays` enqueues."""
        if self.replays is None:
            self._size()
        elapsed: list[float] = []
        start = time.perf_counter()
        while len(elapsed) < protocol.round_runs or time.perf_counter() - start < protocol.round_s:
            elapsed += self._samples(protocol.round_runs)
        return summarize_events(elapsed, self.replays)

    def _samples(self, n: int) -> list[float]:
        import torch

        pairs = []
        with torch.cuda.stream(self.stream):
            for _ in range(n):
                if self.spin:
                    torch.cuda._sleep(self.spin)
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record(self.stream)
                for _ in range(self.replays):
                    self.enqueue()
                b.record(self.stream)
                pairs.append((a, b))
        pairs[-1][1].synchronize()  # after the last event: nothing of the wait is timed
        return [a.elapsed_time(b) for a, b in pairs]

    def _size(self) -> None:
        """Replays per event pair from one timed pair of 5, and the spin that covers the host's enqueue time."""
        self.replays = 5
        one = min(self._samples(3)) / 5
        t0 = time.perf_counter()
        import torch

        with torch.cuda.stream(self.stream):
            for _ in range(20):
                self.enqueue()
        enqueue_s = (time.perf_counter() - t0) / 20
        self.stream.synchronize()
        self.replays = replays_for(one)
        self.spin = sleep_cycles(enqueue_s, self.replays, spin_cycles_per_ms()) if _can_spin() else 0


def _can_spin() -> bool:
    import torch

    return hasattr(torch.cuda, "_sleep")


@functools.lru_cache(maxsize=1)
def spin_cycles_per_ms() -> float:
    """How many `torch.cuda._sleep` cycles make a millisecond on this GPU (measured once per process)."""
    import torch

    cycles = 1_000_000
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(cycles)  # first call loads the kernel
    a.record()
    torch.cuda._sleep(cycles)
    b.record()
    b.synchronize()
    return cycles / max(a.elapsed_time(b), 1e-3)
