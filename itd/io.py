"""Atomic file writes: a reader never sees half a file, and a crash leaves the old file intact."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path


TMP_TAG = socket.gethostname().replace(".", "_") + "-"  # temporaries name their writer: host and pid


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{TMP_TAG}{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def save_npz(path: str | Path, compress: bool = False, **arrays) -> None:
    """``np.savez`` (``savez_compressed`` if ``compress``) to exactly ``path`` (given a name, numpy would append
    ``.npz`` to a temporary file's)."""
    import numpy as np

    with open(path, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
