"""Every mitigation in docs/threat-model.md points to tests that exist (issue 9's acceptance).

Each row's "Shown by" cell names, in backquotes, test files (``tests/...``, ``bench/...``),
test functions (``FILE::name``, ``::name`` for the file named before it, ``name*`` for a
prefix) or fault scenarios of ``netclock sim --scenario``; every one must exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from netclock.sim.library import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "threat-model.md"


def _rows() -> list[tuple[str, str]]:
    """(row number, "Shown by" cell) of the attacks table."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            rows.append((cells[0], cells[4]))
    return rows


def _test_names(path: Path) -> set[str]:
    return {
        n.name
        for n in ast.parse(path.read_text()).body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _check(num: str, ref: str, last: Path | None) -> Path | None:
    """Assert ``ref`` exists; return the file later ``::name`` refs belong to."""
    if ref in SCENARIOS:
        return last
    path_part, _, func = ref.partition("::")
    if path_part:
        assert path_part.startswith(("tests/", "bench/")), f"row {num}: {ref!r} is no test"
        found = sorted(ROOT.glob(path_part.rstrip("/")))
        assert found, f"row {num}: {path_part} does not exist"
        last = found[0] if len(found) == 1 and found[0].suffix == ".py" else None
    if func:
        assert last is not None, f"row {num}: {ref!r} names no single test file"
        names = _test_names(last)
        ok = any(n.startswith(func[:-1]) for n in names) if func.endswith("*") else func in names
        assert ok, f"row {num}: no {func} in {last.relative_to(ROOT)}"
    return last


def test_every_mitigation_names_tests_that_exist() -> None:
    rows = _rows()
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))
    for num, shown in rows:
        refs = re.findall(r"`([^`]+)`", shown)
        assert refs, f"row {num} names no test: {shown!r}"
        last: Path | None = None
        for ref in refs:
            last = _check(num, ref, last)
