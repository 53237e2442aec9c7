"""The house keeps its architecture: the floors nn <- attacks <- analysis <- experiments (a package imports
only from its own floor and those below), no script imports another script, no module over 300 lines."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS = ("nn", "attacks", "analysis", "experiments")
MODULES = sorted(p for floor in FLOORS for p in (REPO / floor).rglob("*.py"))


def _imports(path):
    """The top-level packages and modules ``path`` imports (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(REPO).parent.parts)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names]
    return names


def _module(path):
    """``experiments/beyond/audit.py`` -> ``experiments.beyond.audit``."""
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _is_script(path):
    return 'if __name__ == "__main__":' in path.read_text()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_down_the_floors(path):
    floor = FLOORS.index(path.relative_to(REPO).parts[0])
    above = FLOORS[floor + 1:]
    wrong = [n for n in _imports(path) if n.split(".")[0] in above]
    assert not wrong, f"{path.name} imports from a floor above it: {wrong}"


def test_no_script_imports_a_script():
    scripts = {_module(p) for p in (REPO / "experiments").rglob("*.py") if _is_script(p)}
    assert {"experiments.table1", "experiments.beyond.sweep", "experiments.beyond.audit"} <= scripts  # the test sees them
    for path in MODULES:
        wrong = sorted(set(_imports(path)) & scripts - {_module(path)})
        assert not wrong, f"{path.relative_to(REPO)} imports the script(s) {wrong}; move what it needs to a library module"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300, f"{path.relative_to(REPO)}: split it"
