"""What `hwofa search` and `hwofa run` print: per device its finalists and choice, the bundle's
figures, and (several devices) the cross-device table."""

from __future__ import annotations

from typing import Any

from export import latency_figure
from hwofa.run import RunResult


def finalists_line(entry: dict[str, Any]) -> str:
    """'3 finalists measured: 0.291 ✓ 0.305 ✗ 0.288 ✓ ms (budget 0.3 ms)' or why they were not."""
    fs = entry.get("finalists") or []
    if not entry.get("finalists_measured", True):
        return f"{len(fs)} finalists NOT measured: {entry.get('note', '')}"
    how = "modelled" if any("modelled_ms" in f for f in fs) else "measured"
    pct = entry.get("margin_pct") or 0.0
    target = entry["budget_ms"] / (1 + pct / 100)

    def mark(f: dict[str, Any]) -> str:
        ms = f.get("modelled_ms", f.get("measured_p50_ms", float("nan")))
        return f"{ms:.3f} {'✓' if ms <= target else '≈' if f['meets_budget'] else '✗'}"

    figs = " ".join(mark(f) for f in fs)
    rounds = entry.get("rounds", 1)
    more = f" in {rounds} rounds" if rounds > 1 else ""
    margin = f"; ✓ within a {pct:g} % margin for measuring again, ≈ within the budget only" if pct else ""
    line = f"{len(fs)} finalists {how}{more}: {figs} ms (budget {entry['budget_ms']:g} ms{margin})"
    return line + (f"; {entry['note']}" if entry.get("note") else "")


def search_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for device, r in result["devices"].items():
        ch = r["chosen"]
        fig = ch.get("modelled_ms", ch.get("measured_p50_ms"))
        how = "modelled" if "modelled_ms" in ch else "measured p50"
        got = f"{how} {fig:.3f} ms, " if fig is not None else ""
        err = r["latency_error"]["mean_abs_pct_error"]
        how_front = f"kept in {r['front_from']}" if r.get("front_from") else f"{r['seconds'].get('search', 0):.1f} s"
        lines.append(f"{device}: budget {r['budget_ms']:g} ms · front of {r.get('front_size', '?')} points "
                     f"({how_front}) · chosen: {got}predicted "
                     f"{r['predicted_latency_ms']:.3f} ms (LUT mean abs error {err:.1f}"
                     f" %), predicted val top-1 {r['predicted_top1']:.4f} (predictor RMSE "
                     f"{r['top1_error'].get('rmse', float('nan')):.4f})")
        lines.append(f"  {finalists_line(r)}")
        note = unconstrained_note(r["budget_ms"], r)
        if note:
            lines.append(f"  {note}")
    return lines


def device_lines(rep: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """A bundle's one-line summary and its finalists."""
    lat, acc = rep["latency_ms"], rep["accuracy"]
    how, ms = latency_figure(rep)  # "measured p50" or "modelled": a cost model's figure is never called measured
    top1 = acc["top1_onnx"] if acc.get("top1") is None else acc["top1"]  # the bundle's model, at its precision
    lines = [f"device {rep['device']} · budget {lat['budget']} ms · {how} {ms:.3f} ms "
             f"(predicted {lat['predicted']:.3f} ms) · test top-1 {top1:.4f} {rep.get('precision', 'fp32')} "
             f"(predicted val {acc['predicted_val_top1']:.4f})",
             f"  {finalists_line(entry)}"]
    note = unconstrained_note(lat["budget"], entry)
    return lines + ([f"  {note}"] if note else [])


def run_lines(res: RunResult, out: str) -> list[str]:
    lines: list[str] = []
    for d in res.devices:
        lines += [c.line() for c in d.result.checks]
        lines.append(verification_line(d.result.report))
        lines += device_lines(d.result.report, res.search["devices"][d.name])
    if res.report is not None:
        lines += ["", "cross-device latency (rows: chosen for; columns: run on; ratio to the column's budget):",
                  res.report.table(), *(f"- {v}" for v in res.report.verdicts()), ""]
    t = res.devices[0].result.report["timing_s"]
    built = [d.name for d in res.devices if d.search.lut_built]
    luts = f"LUT built for {', '.join(built)}" if built else "LUT cached"
    if len(res.devices) == 1:
        where = f"bundle in {out}/ (model.onnx, model.json, pareto.png, search.json)"
    else:
        where = f"bundles in {out}/<device>/; {out}/report.md, report.json, fronts.png, search.json"
    if not res.written:
        where = f"nothing written: {out}/ keeps its earlier bundle(s), which passed their checks"
    lines.append(f"{luts} in {t['profile']} s · total {res.seconds['total']} s · {where}")
    return lines


def unconstrained_note(budget_ms: float, entry: dict[str, Any]) -> str:
    """Say so when the budget constrains nothing (e.g. --latency-ms 1e9)."""
    largest = entry.get("largest_predicted_latency_ms")
    if largest is None or budget_ms < largest:
        return ""
    chosen = "so the largest subnet was chosen" if entry.get("chosen_is_largest") else \
        "so the budget did not constrain the choice: the subnet with the best predicted accuracy was chosen"
    return (f"note: the budget {budget_ms:g} ms is above the largest subnet's predicted latency "
            f"({largest:.3f} ms), {chosen}.")


def verification_line(report: dict[str, Any]) -> str:
    v = report["verification"]
    how = "reused from the cache" if v["cached"] else "computed and cached"
    what = "modelled" if report["latency_ms"].get("modelled") is not None else "measured"
    return f"  verification {how} (key {v['key'][:12]}…); latency {what} now"
