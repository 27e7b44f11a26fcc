"""Fixtures shared by several test files."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from datasets.cli import main as dataset_main


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A tiny synthetic dataset at 36x64: 4 videos of 48 frames."""
    root = tmp_path_factory.mktemp("synth")
    result = CliRunner().invoke(
        dataset_main,
        ["synthetic", "--outdir", str(root), "--videos", "4", "--frames", "48", "--res", "36x64"],
    )
    assert result.exit_code == 0, result.output
    return root
