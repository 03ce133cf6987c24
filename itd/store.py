"""The sample store: every batch an arm generates is saved once, under a key of everything that determines it.

A rerun of a killed job, a λ or renoiser sweep that shares the student's baseline, a shard merged later:
all find their finished batches here instead of regenerating them.

    <store>/<arm key>/spec.json                            what determines the arm's samples (read by humans)
    <store>/<arm key>/seed<s>/<lo>-<hi>.npz                images (the world's storage format), indices, NFE, seconds
    <store>/<arm key>/seed<s>/<lo>-<hi>.<metrics key>.npz  per-sample metric columns of those images

The arm key hashes the resolved config of the student, solver, schedule, world, prompt set (not its size:
sample i does not depend on how many there are), dtype and device, plus, for the guided arm, the teacher,
renoiser and guidance; and the source of the ``itd`` package outside ``itd/metrics`` (so an edited sampler
never reuses stale images). The metrics key hashes the metrics config and ``itd/metrics``. Model files are
named by path or hub id: replacing the file behind a path keeps the key (delete the store entry then).

Every file is written atomically (temporary name, then rename), so a killed job leaves finished batches
complete and nothing half-written under a real name; a batch file that does not load, or holds other
indices, counts as missing. Jobs running at the same time may both generate a missing batch; the
results are identical and the last rename wins.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from itd.io import TMP_TAG, atomic_write, save_npz

log = logging.getLogger(__name__)
PACKAGE = Path(__file__).resolve().parent
ARM_KEYS = ("student", "solver", "schedule", "world", "data", "dtype", "device")
GUIDED_KEYS = ("teacher", "renoiser", "guidance")


@functools.lru_cache(maxsize=None)
def source_digest(metrics: bool) -> str:
    """Hash of the package's files (code and shipped weights): ``itd/metrics`` alone, or everything else."""
    h = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in (".py", ".pt")):
        rel = path.relative_to(PACKAGE)
        if (rel.parts[0] == "metrics") == metrics:
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def arm_spec(config: dict, guided: bool) -> dict:
    """The part of the resolved config that determines an arm's samples."""
    spec = {k: config.get(k) for k in ARM_KEYS + (GUIDED_KEYS if guided else ())}
    spec["data"] = {k: v for k, v in (spec["data"] or {}).items() if k != "num_samples"}
    spec["source"] = source_digest(metrics=False)
    return spec


def metrics_key(config: dict) -> str:
    return digest({"metrics": config.get("metrics"), "fid_reference": config.get("fid_reference"), "source": source_digest(metrics=True)})


class ArmStore:
    """One arm's batches: ``load(seed, indices)`` -> dict or None, ``save(seed, indices, **arrays)``."""

    def __init__(self, root: str | Path, spec: dict):
        self.folder = Path(root) / digest(spec)
        self.spec = spec
        if not (self.folder / "spec.json").is_file():
            atomic_write(self.folder / "spec.json", lambda p: p.write_text(json.dumps(spec, indent=1, sort_keys=True, default=str)))
        remove_stale_temporaries(self.folder)

    def path(self, seed: int, indices: Sequence[int], kind: str = "") -> Path:
        return self.folder / f"seed{seed}" / f"{indices[0]:06d}-{indices[-1] + 1:06d}{'.' + kind if kind else ''}.npz"

    def load(self, seed: int, indices: Sequence[int], kind: str = "") -> dict[str, np.ndarray] | None:
        path = self.path(seed, indices, kind)
        if not path.is_file():
            return None
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError) as err:
            log.warning("store: %s does not load (%s); regenerating it", path, err)
            return None
        if not np.array_equal(arrays.get("indices"), np.asarray(indices)):
            log.warning("store: %s holds other samples; regenerating it", path)
            return None
        return arrays

    def save(self, seed: int, indices: Sequence[int], kind: str = "", **arrays) -> Path:
        """Write atomically; 8-bit images are compressed (1024^2 RGB: 3 MB raw)."""
        compress = any(np.asarray(a).dtype == np.uint8 for a in arrays.values())
        return atomic_write(self.path(seed, indices, kind), lambda p: save_npz(p, compress, indices=np.asarray(indices), **arrays))


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries below ``folder`` written by a process of this host that is no longer alive: what a
    killed job was writing when it died (another host's are left alone)."""
    for tmp in folder.rglob(f".*.tmp{TMP_TAG}*"):
        pid = tmp.name.rsplit(TMP_TAG, 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
