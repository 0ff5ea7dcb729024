"""Differential test of portsyncd's TOML parser against Python's tomllib.

Thousands of seeded random documents, valid and invalid, go through both parsers: `portsyncd-toml --batch` (the
parser of PortSyncCore alone, built next to the daemon) and `tomllib.loads`. For each document both must accept or
both refuse it, and when both accept, the trees must be equal (toml-test's tagged JSON on our side).

The documents come from three generators:
- `valid_document`: tables, arrays of tables, dotted and quoted keys, every kind of string, integer, float, date
  and time, arrays and inline tables, comments, CRLF;
- `statement_soup`: short sequences of headers and key-value pairs over a few key names, so that the rules on
  defining tables and keys twice (headers, dotted keys, inline tables, arrays of tables) are hit in every order;
- `mutate`: a valid document with byte flips, truncations, deletions, repeated lines and insertions of
  `[ ] = " ' . { } , # \\` and newlines.

Where tomllib is known to deviate from TOML 1.0, a difference is allowed, precisely (see `documented_exception`):
1. Integers beyond 64 bits: TOML 1.0 says an integer that cannot be represented losslessly must be an error;
   tomllib returns Python's unbounded int. We refuse them ("is not representable in 64 bits").
2. Year 0000: RFC 3339 (and so TOML) allows it; tomllib refuses it because Python's datetime starts at year 1.
Two more differences are by choice and never generated: a leading byte order mark, which we skip and tomllib
refuses, and nesting deeper than 128 arrays and tables, which we refuse (the parser's recursion bound).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from conftest import DEFAULT_BIN

SEED = 20240607
VALID_DOCUMENTS = 2000
SOUP_DOCUMENTS = 3000
MUTATED_DOCUMENTS = 5000


def toml_binary() -> Path:
    """`portsyncd-toml`, next to the daemon that PORTSYNCD_BIN names (it is built with it)."""
    path = Path(os.environ.get("PORTSYNCD_BIN", str(DEFAULT_BIN))).with_name("portsyncd-toml")
    if not path.is_file():
        pytest.fail(f"{path} not found: build it with `swift build --product portsyncd-toml`", pytrace=False)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Generators

BARE_KEYS = ["a", "b", "c", "key", "x1", "_under", "with-dash", "1234", "true", "inf", "Ab_9-z"]
QUOTED_KEYS = ['"quoted key"', '""', "'literal key'", '"a.b"', '"\\u00e9t\\u00e9"', '"tab\\there"', "'🙂'", '"é"',
               '"e\u0301"']
ESCAPES = ["\\n", "\\t", "\\b", "\\f", "\\r", '\\"', "\\\\", "\\u00e9", "\\u0000", "\\U0001F600", "\\u001f", "\\u007F"]
PLAIN_TEXT = ["hello", "wörld", "🙂", " spaced ", "#not a comment", "[brackets]", "a=b", "tab\there", "'", ",",
              "{}", "\\", "ü"]


class Generator:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, items):
        return self.rng.choice(items)

    def key_part(self) -> str:
        return self.choice(BARE_KEYS) if self.rng.random() < 0.8 else self.choice(QUOTED_KEYS)

    def ws(self) -> str:
        return self.choice(["", " ", " ", "  ", "\t"])

    def basic_string(self) -> str:
        parts = []
        for _ in range(self.rng.randint(0, 4)):
            piece = self.choice(PLAIN_TEXT + ESCAPES)
            if piece in ("\\",):
                piece = "\\\\"
            parts.append(piece.replace('"', '\\"') if piece == '"' else piece)
        return '"' + "".join(parts) + '"'

    def literal_string(self) -> str:
        text = "".join(self.choice(["plain", "back\\slash", "C:\\path", "é", " ", '"q"', "#"])
                       for _ in range(self.rng.randint(0, 3)))
        return "'" + text + "'"

    def multiline_basic(self) -> str:
        body = []
        for _ in range(self.rng.randint(0, 4)):
            body.append(self.choice(PLAIN_TEXT[:-2] + ESCAPES + ["\n", '"', '""', "\\\n   ", "\\  \n\n  x"]))
        lead = self.choice(["", "\n"])
        tail = self.choice(["", '"', '""'])
        text = "".join(body)
        if text.endswith("\\"):
            text += "\\"
        return '"""' + lead + text + tail + '"""'

    def multiline_literal(self) -> str:
        body = "".join(self.choice(["line", "\n", "'", "''", "\\n", "é", " "]) for _ in range(self.rng.randint(0, 4)))
        lead = self.choice(["", "\n"])
        tail = self.choice(["", "'", "''"])
        if body.endswith("'") and tail:
            tail = ""
        while "'''" in body:
            body = body.replace("'''", "''")
        if body.endswith("''") and tail:
            tail = ""
        return "'''" + lead + body + tail + "'''"

    def integer(self) -> str:
        kind = self.rng.random()
        if kind < 0.15:
            digits = "".join(self.choice("0123456789abcdefABCDEF") for _ in range(self.rng.randint(1, 8)))
            return "0x" + self.underscored(digits)
        if kind < 0.25:
            return "0o" + self.underscored("".join(self.choice("01234567") for _ in range(self.rng.randint(1, 6))))
        if kind < 0.35:
            return "0b" + self.underscored("".join(self.choice("01") for _ in range(self.rng.randint(1, 12))))
        if kind < 0.42:
            return self.choice(["9223372036854775807", "-9223372036854775808", "0", "+0", "-0",
                                "9223372036854775808", "-9223372036854775809", "0x7FFFFFFFFFFFFFFF",
                                "0xFFFFFFFFFFFFFFFF", "99999999999999999999"])
        sign = self.choice(["", "", "+", "-"])
        number = str(self.rng.randint(0, 10 ** self.rng.randint(1, 12)))
        return sign + (self.underscored(number) if number != "0" else number)

    def underscored(self, digits: str) -> str:
        if len(digits) < 2 or self.rng.random() < 0.6:
            return digits
        cut = self.rng.randint(1, len(digits) - 1)
        return digits[:cut] + "_" + digits[cut:]

    def float(self) -> str:
        if self.rng.random() < 0.15:
            return self.choice(["inf", "+inf", "-inf", "nan", "+nan", "-nan", "-0.0", "+0.0", "0e0", "1e400",
                                "-1e400", "5e-324", "1.7976931348623157e308", "0.1", "1E-7", "3.14159_26535"])
        sign = self.choice(["", "", "+", "-"])
        whole = str(self.rng.randint(0, 10 ** self.rng.randint(1, 6)))
        if whole != "0":
            whole = self.underscored(whole)
        text = sign + whole
        has_fraction = self.rng.random() < 0.7
        if has_fraction:
            text += "." + self.underscored(str(self.rng.randint(0, 10 ** self.rng.randint(1, 8))).zfill(2))
        if not has_fraction or self.rng.random() < 0.3:
            text += self.choice(["e", "E"]) + self.choice(["", "+", "-"]) + str(self.rng.randint(0, 40)).zfill(
                self.choice([1, 2]))
        return text

    def date(self) -> str:
        year = self.rng.randint(1, 9999)
        month = self.rng.randint(1, 12)
        day = self.rng.randint(1, 31 if self.rng.random() < 0.2 else 28)
        return f"{year:04d}-{month:02d}-{day:02d}"

    def time(self) -> str:
        text = f"{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}:{self.rng.randint(0, 59):02d}"
        if self.rng.random() < 0.4:
            text += "." + "".join(self.choice("0123456789") for _ in range(self.rng.randint(1, 12)))
        return text

    def datetime(self) -> str:
        kind = self.rng.random()
        if kind < 0.25:
            return self.date()
        if kind < 0.45:
            return self.time()
        text = self.date() + self.choice(["T", "t", " "]) + self.time()
        if kind < 0.65:
            return text
        return text + self.choice(["Z", "z", "+00:00", "-00:00", "+05:30", "-07:00", "+23:59"])

    def scalar(self) -> str:
        kind = self.rng.randint(0, 9)
        return [self.basic_string, self.literal_string, self.multiline_basic, self.multiline_literal,
                self.integer, self.integer, self.float, self.datetime,
                lambda: self.choice(["true", "false"]), self.basic_string][kind]()

    def value(self, depth: int) -> str:
        roll = self.rng.random()
        if depth < 5 and roll < 0.12:
            return self.array(depth + 1)
        if depth < 5 and roll < 0.2:
            return self.inline_table(depth + 1)
        return self.scalar()

    def array(self, depth: int) -> str:
        items = [self.value(depth) for _ in range(self.rng.randint(0, 4))]
        if self.rng.random() < 0.3:
            # Across lines, with comments and maybe a trailing comma.
            inner = "".join(f"\n  {item}, # c" for item in items)
            return "[" + inner + "\n" + "]"
        trailing = "," if items and self.rng.random() < 0.3 else ""
        return "[" + self.ws() + ("," + self.ws()).join(items) + trailing + self.ws() + "]"

    def inline_table(self, depth: int) -> str:
        pairs = []
        used = set()
        for _ in range(self.rng.randint(0, 4)):
            key = self.dotted_key(max_parts=2)
            head = key.split(".")[0].strip()
            if head in used:
                continue
            used.add(head)
            pairs.append(f"{key}{self.ws()}={self.ws()}{self.value(depth)}")
        return "{" + self.ws() + ("," + self.ws()).join(pairs) + self.ws() + "}"

    def dotted_key(self, max_parts: int = 3) -> str:
        parts = [self.key_part() for _ in range(self.rng.randint(1, max_parts))]
        return (self.ws() + "." + self.ws()).join(parts) if self.rng.random() < 0.2 else ".".join(parts)

    def pairs(self, count: int) -> list[str]:
        lines = []
        used = set()
        for _ in range(count):
            key = self.key_part()
            if key in used:
                continue
            used.add(key)
            comment = self.choice(["", "", " # comment", "\t#", " # é 🙂"])
            lines.append(f"{self.ws()}{key}{self.ws()}={self.ws()}{self.value(0)}{comment}")
        return lines

    def valid_document(self) -> str:
        lines = self.pairs(self.rng.randint(0, 4))
        used_tables = set()
        for _ in range(self.rng.randint(0, 5)):
            name = ".".join(self.key_part() for _ in range(self.rng.randint(1, 3)))
            if self.rng.random() < 0.3:
                header = f"[[{self.ws()}{name}{self.ws()}]]"
            else:
                if name in used_tables:
                    continue
                header = f"[{self.ws()}{name}{self.ws()}]"
            used_tables.add(name)
            lines.append(self.choice(["", "# section"]))
            lines.append(header + self.choice(["", " # header comment"]))
            lines.extend(self.pairs(self.rng.randint(0, 4)))
        text = "\n".join(lines) + self.choice(["", "\n"])
        if self.rng.random() < 0.15:
            text = text.replace("\n", "\r\n")
        return text

    SOUP = ["[a]", "[a.b]", "[a.b.c]", "[b]", "[[a]]", "[[a.b]]", "[[b]]", "[a.c]", "a = 1", "b = 2", "a.b = 1",
            "a.c = 1", "b.c = 1", "a.b.c = 1", "b = {c = 1}", "a = {b = {c = 1}}", "c = [1]", "c = [{d = 1}]",
            "b = []", "a = {}", "c.d = 1", "d = 1", "b.c.d = 1", "[c]", "[[c]]", "[c.d]", "x = {a.b = 1, a.c = 2}",
            "x = {a = {b = 1}, a.c = 2}", "x = {a.b = 1, a = 2}", "x = {a = 1, a.b = 2}", "[b.c]", "[[b.c]]",
            "c.e = 1", "[a.b.c.d]"]

    def statement_soup(self) -> str:
        return "\n".join(self.choice(self.SOUP) for _ in range(self.rng.randint(1, 6))) + "\n"

    INSERTIONS = ["[", "]", "=", '"', "'", ".", "{", "}", ",", "#", "\\", "\n", "\r", " ", "_", "[[", "]]", '"""',
                  "'''", "\t", "\x00", "\x7f", "e", "0", "-", ":", "T", "Z", "+", "\u00e9"]

    def mutate(self, text: str) -> bytes:
        data = bytearray(text.encode())
        for _ in range(self.rng.randint(1, 3)):
            operation = self.rng.randint(0, 6)
            at = self.rng.randint(0, len(data))
            if operation == 0 and data:
                data[min(at, len(data) - 1)] = self.rng.randint(0, 255) if self.rng.random() < 0.2 else ord(
                    self.choice("[]=\"'.{},#\\\n _0aZ:-+"))
            elif operation == 1:
                del data[at:]
            elif operation == 2 and data:
                del data[at:at + self.rng.randint(1, 3)]
            elif operation == 3:
                lines = bytes(data).split(b"\n")
                line = self.rng.randrange(len(lines))
                lines.insert(line, lines[line])
                data = bytearray(b"\n".join(lines))
            else:
                data[at:at] = self.choice(self.INSERTIONS).encode()
        return bytes(data)


# ----------------------------------------------------------------------------------------------------------------
# Comparison


def canonical_time(hour, minute, second, fraction: str) -> str:
    text = f"{hour:02d}:{minute:02d}:{second:02d}"
    fraction = fraction[:6].rstrip("0")
    return text + ("." + fraction if fraction else "")


def python_tree(value):
    """tomllib's value in the same form as `swift_tree` gives ours."""
    import datetime as dt
    if isinstance(value, bool):
        return ("bool", "true" if value else "false")
    if isinstance(value, int):
        return ("integer", str(value))
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, dt.datetime):
        text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T" + canonical_time(
            value.hour, value.minute, value.second, f"{value.microsecond:06d}")
        if value.tzinfo is None:
            return ("datetime-local", text)
        minutes = int(value.utcoffset().total_seconds()) // 60
        return ("datetime", text + canonical_offset(minutes))
    if isinstance(value, dt.date):
        return ("date-local", f"{value.year:04d}-{value.month:02d}-{value.day:02d}")
    if isinstance(value, dt.time):
        return ("time-local", canonical_time(value.hour, value.minute, value.second, f"{value.microsecond:06d}"))
    if isinstance(value, list):
        return [python_tree(item) for item in value]
    if isinstance(value, dict):
        return {key: python_tree(item) for key, item in value.items()}
    raise TypeError(type(value))


def canonical_offset(minutes: int) -> str:
    if minutes == 0:
        return "Z"
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


DATETIME = re.compile(r"(?:(\d{4})-(\d\d)-(\d\d))?T?(?:(\d\d):(\d\d):(\d\d)(?:\.(\d+))?)?(Z|[+-]\d\d:\d\d)?$")


def swift_tree(value):
    """Our tagged JSON, with floats and date-times spelt as `python_tree` spells them."""
    if isinstance(value, dict) and set(value) == {"type", "value"} and all(isinstance(v, str) for v in value.values()):
        kind, text = value["type"], value["value"]
        if kind == "float":
            number = float(text)
            return ("float", "nan" if math.isnan(number) else repr(number))
        if kind in ("datetime", "datetime-local", "date-local", "time-local"):
            match = DATETIME.match(text)
            assert match, text
            year, month, day, hour, minute, second, fraction, offset = match.groups()
            parts = []
            if year:
                parts.append(f"{year}-{month}-{day}")
            if hour:
                parts.append(canonical_time(int(hour), int(minute), int(second), fraction or ""))
            canonical = "T".join(parts)
            if offset:
                canonical += "Z" if offset in ("Z", "+00:00", "-00:00") else offset
            return (kind, canonical)
        return (kind, text)
    if isinstance(value, list):
        return [swift_tree(item) for item in value]
    return {key: swift_tree(item) for key, item in value.items()}


def python_result(document: bytes):
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError as error:
        return ("error", f"not UTF-8: {error}")
    try:
        return ("ok", python_tree(tomllib.loads(text)))
    except tomllib.TOMLDecodeError as error:
        return ("error", str(error))


def swift_results(documents: list[bytes]) -> list:
    framed = b"".join(str(len(document)).encode() + b"\n" + document for document in documents)
    result = subprocess.run([str(toml_binary()), "--batch"], input=framed, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(documents)
    results = []
    for line in lines:
        answer = json.loads(line)
        results.append(("ok", swift_tree(answer["ok"])) if "ok" in answer else ("error", answer["error"]))
    return results


def integers_beyond_64_bits(tree) -> bool:
    if isinstance(tree, tuple):
        return tree[0] == "integer" and not -2 ** 63 <= int(tree[1]) < 2 ** 63
    items = tree.values() if isinstance(tree, dict) else tree
    return any(integers_beyond_64_bits(item) for item in items)


def year_zero(tree) -> bool:
    if isinstance(tree, tuple):
        return tree[0] in ("datetime", "datetime-local", "date-local") and tree[1].startswith("0000-")
    items = tree.values() if isinstance(tree, dict) else tree
    return any(year_zero(item) for item in items)


def documented_exception(ours, theirs) -> str | None:
    """The name of the known tomllib deviation that explains this difference, if one does."""
    if theirs[0] == "ok" and ours[0] == "error" and "is not representable in 64 bits" in ours[1] \
            and integers_beyond_64_bits(theirs[1]):
        return "integer beyond 64 bits"
    if ours[0] == "ok" and theirs[0] == "error" and "Invalid date or datetime" in theirs[1] and year_zero(ours[1]):
        return "year 0000"
    return None


def corpus() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    generator = Generator(rng)
    documents = []
    for index in range(VALID_DOCUMENTS):
        documents.append((f"valid-{index}", generator.valid_document().encode()))
    for index in range(SOUP_DOCUMENTS):
        documents.append((f"soup-{index}", generator.statement_soup().encode()))
    for index in range(MUTATED_DOCUMENTS):
        base = generator.valid_document() if rng.random() < 0.7 else generator.statement_soup()
        documents.append((f"mutated-{index}", generator.mutate(base)))
    return documents


def test_differential_against_tomllib():
    """Every document: both parsers accept it with equal trees, or both refuse it (documented exceptions aside)."""
    started = time.monotonic()
    documents = corpus()
    ours = swift_results([document for _, document in documents])
    differences = []
    exceptions = {}
    accepted = refused = 0
    for (name, document), our in zip(documents, ours):
        theirs = python_result(document)
        if our[0] != theirs[0] or (our[0] == "ok" and our[1] != theirs[1]):
            known = documented_exception(our, theirs)
            if known:
                exceptions[known] = exceptions.get(known, 0) + 1
                continue
            differences.append((name, document, our, theirs))
        elif our[0] == "ok":
            accepted += 1
        else:
            refused += 1
    elapsed = time.monotonic() - started
    report = "\n\n".join(f"{name}: {document!r}\n  ours:    {our}\n  tomllib: {theirs}"
                         for name, document, our, theirs in differences[:10])
    assert not differences, f"{len(differences)} of {len(documents)} documents differ:\n{report}"
    # The corpus must exercise both sides.
    assert accepted > len(documents) // 4 and refused > len(documents) // 4, (accepted, refused)
    print(f"{len(documents)} documents: {accepted} accepted by both, {refused} refused by both, "
          f"documented exceptions {exceptions}, {elapsed:.1f} s")
    assert elapsed < 60, elapsed
