"""Real sample files, read where they are (../shared/data/external), never copied into the repo."""

from pathlib import Path

import pytest

EXTERNAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "external"


def sample(relative: str) -> Path:
    path = EXTERNAL / relative
    if not path.exists():
        pytest.fail(f"sample file missing: {path} (the tests expect ../shared beside the checkout)")
    return path
