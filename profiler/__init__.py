"""Device profiles, the timing routine, runtime backends, LUT build / predict / calibration."""

from profiler.backends import BACKENDS, get_backend
from profiler.build import build_lut
from profiler.lut import LatencyTable, arch_keys, default_lut_path, quality_warning
from profiler.onnx_io import OPSET, to_onnx
from profiler.profiles import DeviceProfile, TimingProtocol, list_profiles, load_profile
from profiler.provenance import host_info, stale_reason
from profiler.timing import Timing, measure_stable

__all__ = ["BACKENDS", "OPSET", "DeviceProfile", "LatencyTable", "Timing", "TimingProtocol", "arch_keys",
           "build_lut", "default_lut_path", "get_backend", "host_info", "list_profiles", "load_profile",
           "measure_stable", "quality_warning", "stale_reason", "to_onnx"]
