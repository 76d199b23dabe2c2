"""Plumbing every stage may use: the user-error type, atomic writes, checked reads, hashing, paths."""

from hwofa.common.errors import UserError
from hwofa.common.files import (
    NUMBER,
    atomic_write_bytes,
    atomic_write_json,
    check_readable_file,
    hwofa_home,
    json_type,
    probe_writable,
    read_json,
    require_fields,
    sha256_bytes,
    sha256_file,
)
from hwofa.common.paths import SHIPPED_RUN, resolve_run

__all__ = ["NUMBER", "SHIPPED_RUN", "UserError", "atomic_write_bytes", "atomic_write_json", "check_readable_file",
           "hwofa_home", "json_type", "probe_writable", "read_json", "require_fields", "resolve_run", "sha256_bytes",
           "sha256_file"]
