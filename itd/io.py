"""Atomic file writes: a reader never sees half a file, and a crash leaves the old file intact."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def save_npz(path: str | Path, **arrays) -> None:
    """``np.savez`` to exactly ``path`` (given a name, numpy would append ``.npz`` to a temporary file's)."""
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, **arrays)
