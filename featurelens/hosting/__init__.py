"""Safe to host: what a visitor may name on the server (cache names, folders under the operator's
roots, label tables under the chosen folder), text without server paths, and a memory-bounded
store shared by all sessions."""

from .jobs import Job, JobBoard, JobRefused
from .memory import ByteBudgetCache, nbytes, release_freed_memory
from .paths import (CACHE_NAME_PATTERN, UnsafePathError, cache_path, check_cache_name, inside_roots, label_tables,
                    read_label_table, redact_paths)

__all__ = ["Job", "JobBoard", "JobRefused", "ByteBudgetCache", "nbytes", "release_freed_memory", "CACHE_NAME_PATTERN", "UnsafePathError", "cache_path", "check_cache_name",
           "inside_roots", "label_tables", "read_label_table", "redact_paths"]
