"""Atomic writes and checked reads: every stage writes its files through these."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hwofa.common.errors import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def hwofa_home() -> Path:
    """Where hwofa caches LUTs, verifications and downloads: $HWOFA_HOME, default ~/.cache/hwofa."""
    return Path(os.environ.get("HWOFA_HOME") or Path.home() / ".cache" / "hwofa")


def check_readable_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path if it is a readable, non-empty file; else a UserError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what}: '{path}' is a directory; give the path of a file.")
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        why = f" ('{parent}' is a file, not a folder)" if parent is not None and not parent.is_dir() else ""
        raise UserError(f"{what}: file '{path}' does not exist{why}.")
    if not path.is_file():
        raise UserError(f"{what}: '{path}' is not a regular file.")
    if path.stat().st_size == 0:
        raise UserError(f"{what}: '{path}' is empty; the file may have been truncated. Regenerate it.")
    return path


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Read JSON or raise a UserError that says which file, and why, in one paragraph."""
    path = check_readable_file(path, what)
    try:
        text = path.read_text()
        if not text.strip():
            raise UserError(f"{what}: '{path}' holds only whitespace; the file may have been truncated. Regenerate it.")
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what}: '{path}' is not valid JSON ({exc}); the file may be truncated or "
                        "corrupt. Regenerate it.") from exc
    except OSError as exc:
        raise UserError(f"{what}: cannot read '{path}' ({exc.strerror or exc}).") from exc


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages: object, list, string, number, ..."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def probe_writable(path: str | os.PathLike, what: str, inside: bool = False) -> None:
    """Refuse (UserError) a path that cannot be created: create and remove a probe in its nearest existing
    folder (in `path` itself with `inside`), leaving nothing behind."""
    path = Path(os.path.abspath(path))
    parent = path if inside else next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise UserError(f"{what} '{path}' cannot be created: '{parent}' is a file, not a folder.")
    try:
        probe = tempfile.mkdtemp(dir=parent, prefix=".hwofa-probe-")
        os.rmdir(probe)
    except OSError as exc:
        raise UserError(f"{what} '{path}' cannot be written: creating anything in '{parent}' fails "
                        f"({exc.strerror or exc}). Choose a writable location.") from exc


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


NUMBER = (int, float)


def require_fields(obj: Any, fields: dict[str, type | tuple[type, ...]], what: str, path: str | os.PathLike) -> None:
    """Check that a JSON object has each field with the given type; a UserError names the first that does not."""
    if not isinstance(obj, dict):
        raise UserError(f"{what}: '{path}' does not hold a JSON object where one is expected; regenerate it.")
    for key, kind in fields.items():
        if key not in obj:
            raise UserError(f"{what}: '{path}' lacks the field '{key}'; the file is incomplete or from another "
                            "tool. Regenerate it.")
        value = obj[key]
        if not isinstance(value, kind) or (kind is NUMBER and isinstance(value, bool)):
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UserError(f"{what}: '{path}' field '{key}' should be {names}, got {type(value).__name__}; "
                            "regenerate the file.")
