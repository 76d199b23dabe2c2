"""The cross-device report of a multi-device run: report.json and report.md.

Rows are the subnets, each "chosen for" one device; columns are the devices they "run on". A
cell holds the subnet's latency on the column's device (measured p50 on a runtime, modelled by a
cost model, or the column device's LUT prediction where that device does not run here) and its
ratio to the column device's budget. The diagonal is each device's own bundle. Beside each row:
the subnet's test top-1 at the precision of the bundle it was chosen for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REPORT_FORMAT = "hwofa-report/1"
SOURCES = {"measured": "measured p50 on the device's runtime", "modelled": "modelled by the device's cost model",
           "predicted": "predicted by the device's LUT (it does not run here)"}


def short_arch(arch: dict[str, Any]) -> str:
    """'r24 · d4-4-2 · k5777-5557-55 · e6463-6443-43': resolution, depth, kernel sizes and expand ratios per stage."""
    stages = arch.get("stages", [])
    ks = "-".join("".join(str(b["kernel_size"]) for b in s) for s in stages)
    es = "-".join("".join(str(b["expand_ratio"]) for b in s) for s in stages)
    return f"r{arch.get('resolution')} · d{'-'.join(str(len(s)) for s in stages)} · k{ks} · e{es}"


@dataclass(frozen=True)
class Cell:
    """One subnet on one device: its latency, how it was obtained, and the device's budget."""

    latency_ms: float
    source: str  # measured | modelled | predicted
    budget_ms: float

    @property
    def ratio(self) -> float:
        return self.latency_ms / self.budget_ms

    @property
    def over(self) -> bool:
        return self.latency_ms > self.budget_ms

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "source": self.source, "budget_ratio": round(self.ratio, 4),
                "over_budget": self.over}

    def text(self) -> str:
        how = "" if self.source == "measured" else f" {self.source}"
        mark = " ✗ over" if self.over else ""
        return f"{self.latency_ms:.3f} ms{how} ({self.ratio:.2f}×{mark})"


@dataclass(frozen=True)
class Subnet:
    """A row: the subnet chosen for `device`, with what its bundle showed."""

    device: str
    budget_ms: float
    arch: dict[str, Any]
    arch_key: str
    top1_fp32: float  # test top-1 of its fp32 ONNX model: the same footing for every row
    top1: float | None  # test top-1 of its bundle's model, at the bundle's precision (None: not computable here)
    predicted_top1: float  # the predictor's validation top-1, which the search ranked it by
    precision: str
    passed: bool
    latency_label: str  # the device target's label, e.g. "measured: onnxruntime 1.32.0"
    bundle: str  # the bundle folder, relative to the run's --out


@dataclass
class CrossDeviceReport:
    rows: list[Subnet]
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)  # chosen for -> run on -> cell
    dataset: str = ""
    predictor_rmse: float | None = None  # the accuracy predictor's held-out RMSE (0..1)

    @property
    def devices(self) -> list[str]:
        return [r.device for r in self.rows]

    def fits(self, column: str) -> list[Subnet]:
        """The subnets within the column device's budget on that device."""
        return [r for r in self.rows if not self.cells[r.device][column].over]

    def best_that_fits(self, column: str) -> Subnet | None:
        """The most accurate subnet (fp32 test top-1, the same footing for all) within the column's budget."""
        return max(self.fits(column), key=lambda r: r.top1_fp32, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "dataset": self.dataset, "devices": self.devices,
                "predictor_rmse": self.predictor_rmse,
                "subnets": {r.device: {"budget_ms": r.budget_ms, "arch": r.arch, "arch_key": r.arch_key,
                                       "test_top1_fp32": r.top1_fp32, "test_top1": r.top1,
                                       "predicted_val_top1": r.predicted_top1, "precision": r.precision,
                                       "passed": r.passed,
                                       "latency_source": r.latency_label, "bundle": r.bundle} for r in self.rows},
                "matrix": {row: {col: c.to_dict() for col, c in cols.items()} for row, cols in self.cells.items()},
                "best_that_fits": {col: (b.device if (b := self.best_that_fits(col)) else None)
                                   for col in self.devices}}

    def table(self) -> str:
        """The matrix as a Markdown table (report.md and the CLI summary)."""
        head = ["chosen for ↓ · run on →", *(f"{d} ({self._budget(d):g} ms)" for d in self.devices),
                "test top-1 fp32", "test top-1 as shipped"]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for r in self.rows:
            cells = [f"**{c.text()}**" if col == r.device else c.text() for col, c in self.cells[r.device].items()]
            shipped = f"{100 * r.top1:.2f} % {r.precision}" if r.top1 is not None else f"— {r.precision}"
            lines.append("| " + " | ".join([r.device, *cells, f"{100 * r.top1_fp32:.2f} %", shipped]) + " |")
        return "\n".join(lines)

    def verdicts(self) -> list[str]:
        """Per column: which subnets fit the device's budget there, and whether its own is the most accurate."""
        return [self._verdict(col) for col in self.devices]

    def _verdict(self, col: str) -> str:
        fits = self.fits(col)
        names = ", ".join(f"{r.device}'s ({100 * r.top1_fp32:.2f} %)" for r in fits) or "none"
        head = f"on {col} (budget {self._budget(col):g} ms) the subnets within budget are {names}"
        best, own = self.best_that_fits(col), next(r for r in self.rows if r.device == col)
        if best is None:
            return f"{head}: not even its own."
        if best is own:
            return f"{head}: its own is the most accurate of them."
        if own not in fits:
            return f"{head}: its own is not ({self.cells[col][col].text()})."
        gap = 100 * (best.top1_fp32 - own.top1_fp32)
        why = ""
        if best.predicted_top1 < own.predicted_top1:
            rmse = f", whose held-out RMSE is {100 * self.predictor_rmse:.2f} points" if self.predictor_rmse else ""
            why = (f"; it was predicted less accurate ({100 * best.predicted_top1:.2f} % vs "
                   f"{100 * own.predicted_top1:.2f} % val), and the search ranks by the predictor{rmse}")
        return f"{head}: {best.device}'s scores {gap:.2f} points above its own on the test split{why}."

    def markdown(self) -> str:
        kinds = sorted({c.source for cols in self.cells.values() for c in cols.values()})
        lines = [f"# hwofa run: {len(self.rows)} devices", "",
                 "Each row is the subnet chosen for one device; each column the device it runs on. A cell is its "
                 "latency there and the ratio to that device's budget (✗ over = over it). Bold: the device's own "
                 "bundle. Latency: " + "; ".join(SOURCES[k] for k in kinds) + " (off the diagonal: a timing-only "
                 "export of the same graph). Top-1: on the " + (self.dataset or "dataset") + " test split, of the "
                 "fp32 model (the same footing for every row) and of the bundle as shipped, at its precision.",
                 "", self.table(), ""]
        lines += [f"- {v}" for v in self.verdicts()]
        lines += ["", "| device | bundle | passed | latency source | subnet (resolution · depth · kernel · expand) |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r.device} | `{r.bundle}` | {'yes' if r.passed else 'NO'} | {r.latency_label} | "
                  f"`{short_arch(r.arch)}` |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def _budget(self, device: str) -> float:
        return next(r.budget_ms for r in self.rows if r.device == device)
