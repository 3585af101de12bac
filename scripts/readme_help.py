"""Regenerate (or, with --check, verify) the README's command reference from --help.

.venv/bin/python scripts/readme_help.py          # rewrite the section
.venv/bin/python scripts/readme_help.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = (
    ["audit"],
    ["apply"],
    ["sync"],
    ["export"],
    ["archive", "info"],
    ["archive", "prune"],
    ["doctor"],
    ["simulate"],
    ["demo"],
    ["completion"],
    ["watch"],
)
HEADING = "## Command reference\n"


def help_text() -> str:
    """The ``--help`` of every command, as a person sees it in a 100-column terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGIN_AUDIT_", "TMV1_"))}
    env["COLUMNS"] = "100"
    parts = []
    for command in ([], *COMMANDS):
        out = subprocess.run(
            [sys.executable, "-m", "login_audit", *command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        parts.append(f"$ login-audit {' '.join(command)} --help".replace("  ", " ") + "\n" + out)
    return "\n".join(parts)


def render() -> str:
    """README.md with its command reference regenerated."""
    text = README.read_text(encoding="utf-8")
    head = text[: text.index(HEADING)]
    return head + HEADING + "\n```text\n" + help_text() + "```\n"


def main() -> int:
    """Rewrite the README, or check it with ``--check``."""
    fresh = render()
    if "--check" in sys.argv:
        if fresh != README.read_text(encoding="utf-8"):
            print("README.md's command reference is stale: run scripts/readme_help.py")
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
