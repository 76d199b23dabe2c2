"""Atomic writes and checked reads: every stage writes its files through these."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from supernet.errors import UserError


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


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Read JSON or raise a UserError that says which file, and why, in one paragraph."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what}: file '{path}' does not exist.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what}: '{path}' is not valid JSON ({exc}); the file may be truncated or "
                        "corrupt. Regenerate it.") from exc


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
