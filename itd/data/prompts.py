"""Text prompt sets: an inline list or a text file with one prompt per line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SMOKE_PROMPTS = (
    "a photo of a cat sitting on a windowsill",
    "a red double-decker bus in the rain",
    "a bowl of ramen, studio lighting",
    "an astronaut riding a horse on the moon",
)


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
            path = Path(self.file)
            if not path.is_file():
                raise ValueError(f"data.file={self.file} not found; point it at a text file with one prompt per line")
            self.prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        self.prompts = list(self.prompts)
        if not self.prompts:
            raise ValueError("data: the prompt set is empty")
        if self.num_samples is None:
            self.num_samples = len(self.prompts)
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"data.num_samples={self.num_samples!r} must be an integer >= 1")

    def prompts_at(self, indices: Sequence[int]) -> list[str]:
        return [self.prompts[i % len(self.prompts)] for i in indices]

    def describe(self, indices: Sequence[int]) -> dict[str, list]:
        return {"prompt": self.prompts_at(indices)}
