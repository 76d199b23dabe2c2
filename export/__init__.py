"""Subnet -> ONNX, checks, parity on runtimes, deployment bundle."""

from export.bundle import check_out_folder
from export.checks import PARITY_TOL, Check, CheckFailed
from export.exporter import Exporter, ExportResult, commit_bundle, export_subnet, load_arch
from export.report import latency_figure

__all__ = ["PARITY_TOL", "Check", "CheckFailed", "ExportResult", "Exporter", "check_out_folder", "commit_bundle",
           "export_subnet", "latency_figure", "load_arch"]
