"""Text prompt sets: an inline list or text file, MS-COCO captions, PartiPrompts.

Every set has ``num_samples``, ``prompts_at(indices)`` and ``describe(indices)`` (the columns it adds to
samples.parquet). A missing or malformed file is one ValueError line naming it; nothing is dropped
silently: what was read and what was skipped is logged.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def _take(num_samples: int | None, available: int, what: str) -> int:
    """``num_samples`` checked against what the file holds (null: all of it)."""
    if num_samples is None:
        return available
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"data.num_samples={num_samples!r} must be an integer >= 1")
    if num_samples > available:
        raise ValueError(f"data.num_samples={num_samples} but {what} holds only {available} prompts; lower it")
    return num_samples


def _file(path: str | None, key: str, what: str) -> Path:
    if path is None:
        raise ValueError(f"data.{key} is not set; point it at {what}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"data.{key}={path} not found; point it at {what}")
    return p


@dataclass
class PromptList:
    """``prompts`` (a list) or ``file`` (one prompt per line, blank lines skipped), cycled up to ``num_samples``."""

    prompts: Sequence[str] | None = None
    file: str | None = None
    num_samples: int | None = None

    def __post_init__(self):
        if (self.prompts is None) == (self.file is None):
            raise ValueError("data: give exactly one of data.prompts (a list) and data.file (a text file)")
        if self.file is not None:
            path = _file(self.file, "file", "a text file with one prompt per line")
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as err:
                raise ValueError(f"data.file={self.file} is not UTF-8 text ({err.reason} at byte {err.start})") from None
            self.prompts = [line.strip() for line in lines if line.strip()]
            log.info("data: %d prompts from %s (%d blank lines skipped)", len(self.prompts), path, len(lines) - len(self.prompts))
        self.prompts = list(self.prompts)
        if not self.prompts:
            raise ValueError(f"data: the prompt set {self.file or '(inline list)'} is empty")
        if self.num_samples is None:
            self.num_samples = len(self.prompts)
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"data.num_samples={self.num_samples!r} must be an integer >= 1")

    def prompts_at(self, indices: Sequence[int]) -> list[str]:
        return [self.prompts[i % len(self.prompts)] for i in indices]

    def describe(self, indices: Sequence[int]) -> dict[str, list]:
        return {"prompt": self.prompts_at(indices)}


@dataclass
class CocoCaptions:
    """MS-COCO captions (``captions_val2014.json`` or ``captions_val2017.json``): one caption per image, the
    first N images.

    The caption of an image is its first in the file's ``annotations`` order; images are taken in the order
    their first caption appears. With the val2014 file and N = 10,000 this is the paper's protocol (the first
    10k captions, one per image). ``describe`` adds ``image_id`` and ``file_name`` (the reference image).
    """

    annotations: str | None = None
    num_samples: int | None = None
    prompts: list[str] = field(init=False, repr=False)
    image_ids: list[int] = field(init=False, repr=False)
    file_names: list[str] = field(init=False, repr=False)

    def __post_init__(self):
        path = _file(self.annotations, "annotations", "COCO's captions_val2014.json (or captions_val2017.json)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            annotations = data["annotations"]
            names = {int(im["id"]): im["file_name"] for im in data.get("images", [])}
            first: dict[int, str] = {}
            for a in annotations:
                first.setdefault(int(a["image_id"]), " ".join(str(a["caption"]).split()))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"data.annotations={self.annotations} is not a COCO captions file ({type(err).__name__}: {err})") from None
        n = _take(self.num_samples, len(first), str(path))
        self.image_ids = list(first)[:n]
        self.prompts = [first[i] for i in self.image_ids]
        self.file_names = [names.get(i, "") for i in self.image_ids]
        self.num_samples = n
        empty = sum(not p for p in self.prompts)
        if empty:
            raise ValueError(f"data.annotations={self.annotations}: {empty} of the first {n} images have an empty caption")
        log.info(
            "data: %d prompts from %s (%d captions of %d images; one caption per image, the first %d images)",
            n, path, len(annotations), len(first), n,
        )

    def prompts_at(self, indices: Sequence[int]) -> list[str]:
        return [self.prompts[i] for i in indices]

    def describe(self, indices: Sequence[int]) -> dict[str, list]:
        return {"prompt": self.prompts_at(indices), "image_id": [self.image_ids[i] for i in indices],
                "file_name": [self.file_names[i] for i in indices]}


@dataclass
class PartiPrompts:
    """PartiPrompts (``PartiPrompts.tsv``: columns Prompt, Category, Challenge, Note), the first N rows,
    optionally of one ``category``. ``describe`` adds ``category`` and ``challenge``."""

    file: str | None = None
    num_samples: int | None = None
    category: str | None = None
    rows: list[dict] = field(init=False, repr=False)

    def __post_init__(self):
        path = _file(self.file, "file", "PartiPrompts.tsv")
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if not reader.fieldnames or "Prompt" not in reader.fieldnames:
                raise ValueError(f"data.file={self.file} has no 'Prompt' column in its tab-separated header (got {reader.fieldnames})")
            rows = list(reader)
        blank = [i + 2 for i, r in enumerate(rows) if not (r.get("Prompt") or "").strip()]
        if blank:
            raise ValueError(f"data.file={self.file}: empty prompt on line {blank[0]} ({len(blank)} such lines)")
        if self.category is not None:
            kept = [r for r in rows if r.get("Category") == self.category]
            if not kept:
                raise ValueError(f"data.category={self.category!r} matches no row of {self.file}; categories: {sorted({r.get('Category') for r in rows})}")
            rows = kept
        self.num_samples = _take(self.num_samples, len(rows), str(path))
        self.rows = rows[: self.num_samples]
        log.info("data: %d prompts from %s (category %s)", self.num_samples, path, self.category or "any")

    def prompts_at(self, indices: Sequence[int]) -> list[str]:
        return [self.rows[i]["Prompt"].strip() for i in indices]

    def describe(self, indices: Sequence[int]) -> dict[str, list]:
        return {"prompt": self.prompts_at(indices), "category": [self.rows[i].get("Category") for i in indices],
                "challenge": [self.rows[i].get("Challenge") for i in indices]}
