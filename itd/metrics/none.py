"""No quality metrics: cost only (NFE, seconds). For smoke runs and for worlds without a judge yet."""

from __future__ import annotations


class NoMetrics:
    def per_sample(self, images, prompts) -> dict:
        return {}

    def aggregate(self, columns: dict) -> dict[str, float]:
        return {}
