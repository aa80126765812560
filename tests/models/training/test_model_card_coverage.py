"""The model card flags a holdout coverage outside the target band, with its sampling error."""

from __future__ import annotations

import pytest

from models.training.model_card import coverage_text


def _metadata(coverage: float, rows: int) -> dict[str, object]:
    return {
        "metrics": {"interval_coverage": coverage},
        "row_counts": {"holdout": rows},
        "interval": {"level": 0.9},
    }


@pytest.mark.parametrize(
    ("coverage", "rows", "says"),
    [
        (0.897, 3192, "0.897 (95 % CI 0.886-0.907 on 3,192 orders; target 0.88-0.92)"),
        (
            0.846,
            84,
            "**0.846 (95 % CI 0.753-0.907 on 84 orders; target 0.88-0.92): outside the target "
            "band, within sampling error of it**",
        ),
        (
            0.846,
            421,
            "**0.846 (95 % CI 0.808-0.877 on 421 orders; target 0.88-0.92): OUTSIDE the target "
            "band beyond sampling error**",
        ),
    ],
)
def test_coverage_outside_the_band_is_flagged(coverage: float, rows: int, says: str) -> None:
    assert coverage_text(_metadata(coverage, rows)) == says
