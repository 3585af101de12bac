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


def test_the_library_runs_without_click() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            imported = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if not name.startswith("cli/") and any(m.split(".")[0] == "click" for m in imported):
                offenders.append(name)
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


#: The tests of the command line itself (its fixture, options, help, startup, Ctrl-C):
#: the only test files that may import it. Every other test calls the library.
CLI_TESTS = {
    "conftest.py",
    "test_first_hour.py",
    "test_http.py",
    "test_interrupts.py",
    "test_layers.py",
    "test_readme.py",
    "test_startup.py",
}


def test_only_the_command_lines_own_tests_import_it() -> None:
    tests = Path(__file__).parent
    importers = set()
    for path in sorted(tests.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        named = {
            node.value
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        # A module named in a string (sys.modules, a child process's code) counts too.
        strings = {name for name in named if "login_audit.cli" in name}
        if reaches(imports_of(path), "login_audit.cli") or strings:
            importers.add(path.name)
    assert importers <= CLI_TESTS, sorted(importers - CLI_TESTS)
