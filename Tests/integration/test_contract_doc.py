"""docs/sonic-contract.md cannot rot: every numbered statement 1-35 is there once, in order, and cites at least one
test; every file it cites exists, and every test function it cites is defined in the file it is cited with.

Runs without the daemon, Redis or root: it only reads the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "sonic-contract.md"
STATEMENTS = range(1, 36)
# Statements allowed to cite a test file that does not exist yet (a statement being built with its test file), by
# number; empty now that statement 35's test_container.py has landed.
MAY_BE_MISSING: dict[int, set[str]] = {}

HEADING = re.compile(r"^### (\d+)\. ", re.MULTILINE)
PATH = re.compile(r"`((?:Sources|Tests)/[^`\s]+\.(?:swift|py|lua))`")
# In a **Tests:** item: a test file, then its functions in parentheses.
CITATION = re.compile(r"`(Tests/[^`\s]+\.(?:swift|py))`(?:\s*\(([^)]*)\))?")
NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def sections() -> dict[int, str]:
    text = DOC.read_text()
    found = list(HEADING.finditer(text))
    out = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        number = int(match.group(1))
        assert number not in out, f"statement {number} appears twice"
        out[number] = text[match.start():end]
    return out


def item(section: str, label: str) -> str:
    """The text of the `- **label:**` item of a statement, up to the next item or the end of the section."""
    match = re.search(rf"^- \*\*{label}:\*\*(.*?)(?=^- \*\*|\Z)", section, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def citations(section: str) -> list[tuple[str, list[str]]]:
    return [(path, NAME.findall(names or "")) for path, names in CITATION.findall(item(section, "Tests"))]


def defines(path: Path, function: str) -> bool:
    source = path.read_text()
    if path.suffix == ".py":
        return re.search(rf"^(?:async )?def {re.escape(function)}\(", source, re.MULTILINE) is not None
    return re.search(rf"\bfunc {re.escape(function)}\(", source) is not None


def test_every_statement_once_in_order():
    numbers = [int(n) for n in HEADING.findall(DOC.read_text())]
    assert numbers == list(STATEMENTS)


@pytest.mark.parametrize("number", STATEMENTS)
def test_statement_cites_code_and_tests_that_exist(number):
    section = sections()[number]
    allowed_missing = MAY_BE_MISSING.get(number, set())
    cited = citations(section)
    assert cited, f"statement {number} cites no test"
    for path, functions in cited:
        file = ROOT / path
        if not file.exists():
            assert path in allowed_missing, f"statement {number}: {path} does not exist"
            assert not functions, f"statement {number}: functions cited in {path}, which does not exist yet"
            continue
        for function in functions:
            assert defines(file, function), f"statement {number}: {path} defines no {function}"
    if number not in MAY_BE_MISSING:
        assert any(functions for _, functions in cited), f"statement {number} names no test function"
    code = PATH.findall(item(section, "Code"))
    assert code, f"statement {number} cites no code"
    for path in code:
        assert (ROOT / path).exists(), f"statement {number}: {path} does not exist"


def test_every_file_the_document_names_exists():
    for path in set(PATH.findall(DOC.read_text())) - set().union(set(), *MAY_BE_MISSING.values()):
        assert (ROOT / path).exists(), path


def test_checker_sees_a_missing_function():
    """The checker itself: a function that is not defined is found missing (so a rotten citation fails)."""
    assert defines(ROOT / "Tests/integration/test_contract_doc.py", "test_checker_sees_a_missing_function")
    assert not defines(ROOT / "Tests/integration/test_contract_doc.py", "test_no_such_function")
    assert defines(ROOT / "Tests/PortSyncCoreTests/CapturedRuleTests.swift", "s13CapturedGroups")
