"""Fixtures for model tests."""

from __future__ import annotations

import pytest
from molecule_factory import Molecules


@pytest.fixture
def molecules() -> Molecules:
    """Four random molecules of 5-14 atoms in float64."""
    return Molecules([5, 9, 7, 14])
