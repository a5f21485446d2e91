"""Shared fixtures: real data from ../shared/realdata when present, tiny data otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real test files; skips the test when the checkout has no ../shared."""
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} is absent (a fresh clone has no ../shared/realdata)")
    return REALDATA
