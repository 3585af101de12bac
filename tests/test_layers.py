"""The package's import directions, read from the source: each layer imports only below it."""

from __future__ import annotations

import ast
from pathlib import Path

import login_audit

PACKAGE = Path(login_audit.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every ``login_audit`` module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("login_audit")}


def modules(under: str = "") -> dict[str, set[str]]:
    """Each module's name (relative to the package) and what it imports."""
    root = PACKAGE / under
    return {str(path.relative_to(PACKAGE)): imports_of(path) for path in sorted(root.rglob("*.py"))}


def reaches(imports: set[str], target: str) -> bool:
    return any(name == target or name.startswith(f"{target}.") for name in imports)


def test_nothing_outside_the_command_line_imports_it() -> None:
    offenders = [
        name
        for name, imports in modules().items()
        if not name.startswith("cli/")
        and name != "__main__.py"
        and reaches(imports, "login_audit.cli")
    ]
    assert offenders == []


def test_the_archive_stores_sync_state_without_importing_the_sync_jobs() -> None:
    offenders = [
        name
        for name, imports in modules("archive").items()
        if reaches(imports, "login_audit.sync") or reaches(imports, "login_audit.sweep")
    ]
    assert offenders == []
    assert imports_of(PACKAGE / "syncstate.py") == set()
    assert not reaches(imports_of(PACKAGE / "sweep.py"), "login_audit.sync")
