"""Subnet -> ONNX, checks, parity on runtimes, deployment bundle."""

from export.checks import PARITY_TOL, Check, CheckFailed
from export.exporter import export_subnet, load_arch

__all__ = ["PARITY_TOL", "Check", "CheckFailed", "export_subnet", "load_arch"]
