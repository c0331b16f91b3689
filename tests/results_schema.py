"""The results.json schema of docs/results.md, read from its tables, and a checker.

Each table follows a ``<!-- schema: KIND -->`` marker; its rows are
``| `path` | `type` | required | unit | meaning |``. Paths: ``a.b`` (key),
``a[]`` (every list element), ``a.*`` (every value of an object). A value of
``null`` where a deeper key is expected means the section is absent (e.g.
``finetune`` without fine-tuning): the keys below it are not checked.
"""

import pathlib
import re

RESULTS_MD = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results.md"

#: schema kinds per kind of study
KINDS = {
    "study": ("common", "study"),
    "sparse_crossbars": ("common", "paper", "sparse_crossbars"),
    "dub_adc": ("common", "paper", "dub_adc"),
    "tile_dse": ("common", "paper", "tile_dse"),
}


def schema(kind: str, text: str | None = None) -> list[tuple[str, str, bool]]:
    """``(path, type, required)`` rows of the tables of ``kind`` (``KINDS`` key or one table)."""
    text = RESULTS_MD.read_text() if text is None else text
    tables = KINDS.get(kind, (kind,))
    rows, current = [], None
    for line in text.splitlines():
        m = re.match(r"<!-- schema: (\w+) -->", line.strip())
        if m:
            current = m.group(1)
            continue
        if current is None:
            continue
        if not line.startswith("|"):
            if line.strip() and not line.startswith("<!--"):
                current = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`") or current not in tables:
            continue
        rows.append((cells[0].strip("`"), cells[1].strip("`"), cells[2] == "yes"))
    return rows


def _type_ok(value, typ: str) -> bool:
    if typ.endswith(" or null"):
        return value is None or _type_ok(value, typ[: -len(" or null")])
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        "float": number,
        "int": isinstance(value, int) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "object": isinstance(value, dict),
        "list": isinstance(value, list),
        "list[float]": isinstance(value, list)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value),
    }[typ]


def _values(node, parts, where):
    """``(where, value)`` for every match of ``parts``; ``KeyError`` naming a missing key."""
    if not parts:
        yield where, node
        return
    if node is None:  # an absent (null) section: nothing below it to check
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        key = head[:-2]
        items = node[key] if key in node else _missing(where, key)
        for i, item in enumerate(items):
            yield from _values(item, rest, f"{where}.{key}[{i}]")
    elif head == "*":
        for k, v in node.items():
            yield from _values(v, rest, f"{where}.{k}")
    elif head in node:
        yield from _values(node[head], rest, f"{where}.{head}")
    else:
        _missing(where, head)


def _missing(where, key):
    raise KeyError(f"results.json lacks {where}.{key} (docs/results.md marks it required)")


def check(results: dict, kind: str) -> int:
    """Assert that ``results`` has every required key of ``kind`` with its documented type;
    returns the number of values checked."""
    rows = schema(kind)
    assert rows, f"docs/results.md has no tables for {kind!r}"
    n = 0
    for path, typ, required in rows:
        if not required:
            continue
        parts = re.findall(r"[^.\[\]]+\[\]|[^.]+", path)
        for where, value in _values(results, parts, "results"):
            assert _type_ok(value, typ), f"{where} = {value!r:.60} is not {typ} (docs/results.md)"
            n += 1
    return n
