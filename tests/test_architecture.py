"""The layering of docs/architecture.md is enforced by import-linter contracts
(pyproject.toml [tool.importlinter]); this test fails when a change breaks one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a test dependency (pyproject.toml [test])"
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_every_module_has_a_docstring():
    import ast

    missing = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        if "migrations/versions" in str(path):
            continue
        tree = ast.parse(path.read_text())
        if path.stat().st_size and ast.get_docstring(tree) is None:
            missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"modules without a docstring: {missing}"
