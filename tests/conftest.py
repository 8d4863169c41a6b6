"""Shared pytest fixtures.

Real-data tests read ``../shared/data`` (relative to the repository root) in
place and skip with a clear reason when it is absent (a fresh clone elsewhere
has no shared folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / '..' / 'shared' / 'data').resolve()
SKIP_NO_SHARED = (
    '../shared/data not found: real-data test skipped '
    '(fresh clone without the shared folder)'
)


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """Path of ``../shared/data``; skips the test when it does not exist."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_NO_SHARED)
    return SHARED_DATA
