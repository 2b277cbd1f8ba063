"""The README's bad-input table: every row names the tests that check it, and each named
test exists (a function in tests/, and a case of it where one is named)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
README = TESTS.parent / "README.md"
NAME = re.compile(r"^(?:(?P<file>test_\w+\.py)::)?(?P<test>test_\w+)(?:\[(?P<case>[\w.-]+)\])?$")


def bad_input_rows() -> list[tuple[str, list[str]]]:
    """(input cell, the names in the tests cell) of each row of the "Bad input" table."""
    section = README.read_text(encoding="utf-8").split("\n## Bad input", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert lines[0] == "| input | what it gets | tests |", lines[0]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert len(cells) == 3, line
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[2])))
    return rows


def functions_and_strings(file: str) -> tuple[dict[str, ast.FunctionDef], set[str]]:
    """Test functions of a test file by name, and every string constant in it (the
    parametrised case ids are written there)."""
    tree = ast.parse((TESTS / file).read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}  # fmt: skip
    return functions, strings


def test_the_table_has_its_rows() -> None:
    rows = bad_input_rows()
    assert len(rows) >= 30
    assert any(cell.startswith("RLE, JPEG baseline, JPEG-LS") for cell, _ in rows)


@pytest.mark.parametrize(("row", "names"), bad_input_rows(), ids=lambda v: str(v)[:40])
def test_every_row_names_tests_that_exist(row: str, names: list[str]) -> None:
    assert names, f"row {row!r} names no test"
    for name in names:
        match = NAME.match(name)
        assert match, f"{name!r} is not [FILE.py::]test_NAME[CASE]"
        file = match["file"] or "test_hostile.py"
        functions, strings = functions_and_strings(file)
        test = functions.get(match["test"])
        assert test is not None, f"row {row!r}: {file} has no {match['test']}"
        if match["case"]:
            parametrised = any("parametrize" in ast.unparse(d) for d in test.decorator_list)
            written = match["case"] in strings
            assert parametrised and written, (
                f"row {row!r}: {match['test']} has no case {match['case']!r}"
            )
