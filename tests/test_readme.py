"""The README's command reference is the tool's real --help."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_command_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "readme_help.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
