"""Device profiles, the timing routine, runtime backends, LUT build / predict / calibration."""

from profiler.backends import TARGETS, Target, get_target
from profiler.build import build_lut
from profiler.device import device_target
from profiler.lut import LatencyTable, arch_keys, default_lut_path, quality_warning
from profiler.onnx_io import OPSET, to_onnx
from profiler.profiles import DeviceProfile, TimingProtocol, list_profiles, load_profile
from profiler.provenance import host_info, stale_reason
from profiler.timing import Timing, measure_stable

__all__ = ["OPSET", "TARGETS", "DeviceProfile", "LatencyTable", "Target", "Timing", "TimingProtocol", "arch_keys",
           "build_lut", "default_lut_path", "device_target", "get_target", "host_info", "list_profiles", "load_profile",
           "measure_stable", "quality_warning", "stale_reason", "to_onnx"]
