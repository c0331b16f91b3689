"""The package's seams: no module reaches into another module's private names."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("crossjax", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_of(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_uses(path: pathlib.Path) -> list[str]:
    """``from crossjax.x import _y`` and ``x._y`` on an imported crossjax module, in one file."""
    here = _module_of(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    modules, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("crossjax"):
                    modules[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, here, path.name == "__init__.py")
            if not source.startswith(("crossjax", "benchmarks")):
                continue
            for a in node.names:
                if _private(a.name) or any(_private(p) for p in source.split(".")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {source} import {a.name}")
                else:
                    modules[a.asname or a.name] = f"{source}.{a.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
            and modules[node.value.id] != here
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    uses = [u for p in SOURCES for u in private_uses(p)]
    assert not uses, "private names used across modules (make them public or move the code):\n" + "\n".join(uses)


def test_tests_use_no_private_names():
    """Tests check public behaviour: no test reaches into another module's private names."""
    found = sorted(u for p in sorted((ROOT / "tests").glob("*.py")) for u in private_uses(p))
    assert not found, "private names used by tests (test the public behaviour instead):\n" + "\n".join(found)


def test_the_checker_finds_what_it_should(tmp_path):
    pkg = ROOT / "crossjax"
    probe = pkg / "_probe_for_structure_test.py"
    probe.write_text(
        "from crossjax import layers\nfrom crossjax.crossbar import _apply\nlayers._check()\n"
        "from .circuit._x import y\n"
    )
    try:
        assert len(private_uses(probe)) == 3
    finally:
        probe.unlink()
