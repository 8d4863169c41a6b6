"""A seeded, bounded fuzz run of the loaders (issue 18): no crash, no hang, one-line refusals.

The fuzzer is ``tests/fuzz_inputs.py`` (``python -m tests.fuzz_inputs --n 5000`` runs
thousands); here a few hundred mutations of a small DICOM series and NIfTI file, each
loaded with ``load_ct`` and proposed on with ``propose(open_ct(...))`` in a worker
process under a 4 GiB address-space limit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_inputs import fuzz  # noqa: E402


@pytest.mark.slow
def test_mutated_inputs_load_or_are_refused_in_one_line():
    results = fuzz(n=200, seed=20261207, timeout=30.0)
    bad = [r for r in results if r['outcome'] not in ('ok', 'refused')]
    assert not bad, '\n'.join(f"{r['mutation']}: {r['outcome']}: {r['detail']}" for r in bad[:10])
    # the run exercised both answers (a fuzzer that broke nothing, or everything, tests nothing)
    outcomes = {r['outcome'] for r in results}
    assert outcomes == {'ok', 'refused'}
