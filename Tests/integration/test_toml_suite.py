"""The configuration's TOML parser against toml-test, the TOML language's own test suite, for TOML 1.0.0.

Every document the suite lists as invalid must be refused, and every valid one must give the suite's expected
tree. The suite is not kept in this repository: it is taken, at the version pinned here, from the source
distribution of the `tomlkit` package on PyPI, which carries it (`tests/toml-test`), into `.build/` once.

Values are compared as toml-test's own runner compares them: floats as numbers (`0` and `0.0`, `1e6` and
`1000000.0` are one value), date-times by the instant or the local fields they name (`.6` and `.600` seconds are
one value), everything else as text.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import DEFAULT_BIN, REPO_ROOT

SUITE_PACKAGE = "tomlkit==0.15.3"
CACHE = REPO_ROOT / ".build" / "toml-test"


@pytest.fixture(scope="module")
def suite() -> Path:
    """The toml-test `tests/` directory, fetched into .build/ on first use."""
    root = CACHE / "tests"
    if not (root / "files-toml-1.0.0").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "-d", str(CACHE), SUITE_PACKAGE], check=True, timeout=300)
        archive = next(CACHE.glob("tomlkit-*.tar.gz"))
        prefix = f"{archive.name[:-len('.tar.gz')]}/tests/toml-test/tests/"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(prefix):
                    target = root / member.name[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
    return root


@pytest.fixture(scope="module")
def parser() -> Path:
    path = Path(os.environ.get("PORTSYNCD_BIN", str(DEFAULT_BIN))).with_name("portsyncd-toml")
    if not path.exists():
        pytest.fail(f"{path} not found: build it with `swift build --product portsyncd-toml`", pytrace=False)
    return path


def listed(suite: Path, kind: str) -> list[str]:
    names = (suite / "files-toml-1.0.0").read_text().split()
    return [name for name in names if name.startswith(kind + "/") and name.endswith(".toml")]


def parse(parser: Path, data: bytes):
    result = subprocess.run([str(parser)], input=data, capture_output=True, timeout=30)
    return result.returncode, result.stdout, result.stderr


def instant(kind: str, text: str):
    text = text.replace(" ", "T").replace("t", "T").replace("z", "Z")
    if kind == "time-local":
        return datetime.time.fromisoformat(text)
    if kind == "date-local":
        return datetime.date.fromisoformat(text)
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def same(expected, got) -> bool:
    if isinstance(expected, dict) and set(expected) == {"type", "value"} and isinstance(expected["value"], str):
        if not (isinstance(got, dict) and got.get("type") == expected["type"]):
            return False
        kind, want, have = expected["type"], expected["value"], got.get("value")
        if kind == "float":
            a, b = float(want), float(have)
            return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
        if kind in ("datetime", "datetime-local", "date-local", "time-local"):
            return instant(kind, want) == instant(kind, have)
        return want == have
    if isinstance(expected, dict):
        return isinstance(got, dict) and set(expected) == set(got) and all(same(expected[k], got[k]) for k in expected)
    if isinstance(expected, list):
        return isinstance(got, list) and len(expected) == len(got) and all(map(same, expected, got))
    return expected == got


def test_every_invalid_document_of_toml_test_is_refused(suite, parser):
    names = listed(suite, "invalid")
    assert len(names) > 400
    accepted = [name for name in names if parse(parser, (suite / name).read_bytes())[0] == 0]
    assert accepted == [], f"{len(accepted)} of {len(names)} invalid documents accepted"
    print(f"toml-test 1.0.0: {len(names)} invalid documents, all refused")


def test_every_valid_document_of_toml_test_gives_its_tree(suite, parser):
    names = listed(suite, "valid")
    assert len(names) > 200
    wrong = []
    for name in names:
        code, out, err = parse(parser, (suite / name).read_bytes())
        expected = json.loads((suite / name).with_suffix(".json").read_text())
        if code != 0:
            wrong.append((name, err.decode(errors="replace")[:200]))
        elif not same(expected, json.loads(out)):
            wrong.append((name, "a different tree"))
    assert wrong == [], f"{len(wrong)} of {len(names)} valid documents: {wrong[:10]}"
    print(f"toml-test 1.0.0: {len(names)} valid documents, every tree as expected")
