"""Real data: a small MRMP trained on SBU folds 1-4 classifies the held-out fold 0."""

from pathlib import Path

import pytest

from mrmp.store import read_manifest
from tests.conftest import needs_data


@needs_data
@pytest.mark.slow
def test_small_mrmp_on_sbu_fold0_generalizes(sbu_fold0_store: Path):
    table = read_manifest(sbu_fold0_store).evaluated("prior")
    assert read_manifest(sbu_fold0_store).evaluation.samples == 55
    for key in ("0.50", "0.90"):
        row = table[key]
        assert row.accuracy >= 60.0, (key, row)
        assert row.observed_rate == pytest.approx(float(key), abs=0.02)
