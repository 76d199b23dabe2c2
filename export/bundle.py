"""The deployment bundle folder: built on the side, swapped in whole, never over a better one.

An export writes its files into a side folder next to `--out` (same filesystem), and only when
every fatal check passed is the side folder renamed into place (the old bundle is renamed
aside first, then deleted). A bundle that missed its latency budget (`passed: false`) never
replaces one that passed. --out itself is checked before any slow work.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hwofa.common import UserError, probe_writable

log = logging.getLogger(__name__)
BUNDLE_FILES = frozenset({"model.onnx", "model.json", "pareto.png", "search.json"})
RUN_FILES = frozenset({"report.json", "report.md", "fronts.png", "search.json"})  # a several-device run's --out


def check_out_folder(out: str | os.PathLike) -> Path:
    """Refuse an --out the bundle cannot replace (UserError); returns its resolved path."""
    path = Path(out).resolve()
    if path.exists() and not path.is_dir():
        raise UserError(f"--out '{out}' is a file; the bundle needs a folder. Choose another --out.")
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents or os.path.ismount(path):
        what = "a mount point" if os.path.ismount(path) else "the current folder or holds it"
        raise UserError(f"--out '{out}' is {what}; a bundle replaces its --out folder whole. Choose a subfolder "
                        "such as 'out'.")
    if path.is_dir():
        try:
            entries = [p.name for p in path.iterdir()]
        except OSError as exc:
            raise UserError(f"--out '{out}' cannot be read ({exc.strerror or exc}). Choose another --out.") from exc
        known = BUNDLE_FILES | RUN_FILES
        others = sorted(name for name in entries if name not in known and not _is_bundle(path / name))
        if others or (entries and not {"model.json", "report.json"} & set(entries)):
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise UserError(f"--out '{out}' is a folder that holds files other than a hwofa bundle "
                            f"({shown or 'no model.json'}); the bundle replaces its --out folder whole, so nothing "
                            "there would survive. Choose a new or empty folder.")
        probe_writable(path, "--out", inside=True)  # the old bundle's files must be removable
    probe_writable(path, "--out")
    return path


def _is_bundle(path: Path) -> bool:
    """A device's bundle folder inside a several-device run's --out."""
    return path.is_dir() and (path / "model.json").is_file() and all(p.name in BUNDLE_FILES for p in path.iterdir())


def holds_passed_bundle(out: Path) -> bool:
    """Whether `out` holds a bundle whose model.json says it passed every check (for a several-device
    run's --out: whether any of its device bundles did)."""
    if not (out / "model.json").exists() and (out / "report.json").is_file():
        return any(holds_passed_bundle(p) for p in out.iterdir() if _is_bundle(p))
    try:
        report = json.loads((out / "model.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(report, dict):
        return False
    if "passed" in report:
        return report["passed"] is True
    checks = report.get("checks")  # bundles written before `passed` existed: a list of "✓ ..." lines
    return isinstance(checks, list) and bool(checks) and all(isinstance(c, str) and c.startswith("✓") for c in checks)


def replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` at `target`: rename the old one aside, rename the new one in, delete the old."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old)  # an empty folder may be replaced by a folder
    try:
        os.rename(new, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class StagedBundle:
    """A side folder the bundle is written into; `commit` swaps it in, leaving the block discards it."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out).resolve()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(self.out)
        self.dir = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.partial-{os.getpid()}-"))

    def __enter__(self) -> StagedBundle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self, passed: bool) -> bool:
        """Swap the staged bundle in; a bundle that did not pass never replaces one that did.
        Returns whether --out now holds the staged bundle."""
        if not passed and holds_passed_bundle(self.out):
            log.warning("%s holds a bundle that passed its checks; the new one did not, so it was not written",
                        self.out)
            self.discard()
            return False
        replace_dir(self.dir, self.out)
        return True


def _remove_stale_partials(out: Path) -> None:
    """Side folders left by a process that was killed mid-export."""
    for p in out.parent.glob(f".{out.name}.partial-*-*"):
        pid = p.name[len(f".{out.name}.partial-"):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
