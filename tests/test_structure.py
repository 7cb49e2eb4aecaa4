"""The package's shape: no import cycles between kiosk modules (module-level imports)."""

import ast
from pathlib import Path

KIOSK = Path(__file__).resolve().parents[1] / "kiosk"


def module_name(path: Path) -> str:
    rel = path.relative_to(KIOSK.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def top_level_imports(path: Path) -> set[str]:
    """kiosk modules imported when ``path`` is imported (imports inside functions are lazy by design)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # names for type hints only: not imported at run time
        nodes = [node] + (list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.ImportFrom) and n.level:
                base = package.rsplit(".", n.level - 1)[0] if n.level > 1 else package
                target = f"{base}.{n.module}" if n.module else base
                if n.module is None:  # from . import x
                    out.update(f"{base}.{a.name}" for a in n.names)
                else:
                    out.add(target)
            elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("kiosk"):
                out.add(n.module)
            elif isinstance(n, ast.Import):
                out.update(a.name for a in n.names if a.name.startswith("kiosk"))
    return out


def test_no_import_cycles():
    modules = {module_name(p): p for p in KIOSK.rglob("*.py")}
    graph = {m: {t for t in top_level_imports(p) if t in modules and t != m} for m, p in modules.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def fault_codes_in(root: Path) -> dict[str, list[str]]:
    """Every fault code written in a string under ``root``, with where: a string that is a code
    (``TAKEN_OVER = "E604"``, ``code="E300"``, a dict key) or one that names it in a message
    (``"(code E301)"``, ``"E502: ..."``), in plain and f-strings alike. Not only ``code = "E..."``:
    codes kept in constants escaped that scan (E501, E502, E603, E604)."""
    import re

    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for code in re.findall(r"(?<![A-Za-z0-9_])E\d{3}(?![A-Za-z0-9_])", node.value):
                    found.setdefault(code, []).append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_every_fault_code_the_code_can_raise_is_in_the_readme_table():
    """One table for technicians: a code on the screen that the README does not explain is a dead end."""
    import re

    repo = Path(__file__).resolve().parents[1]
    used = fault_codes_in(repo / "kiosk")
    readme = (repo / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Fault codes")[1].split("\n## ")[0]
    listed = set()
    for row in table.splitlines():
        cell = row.split("|")[1] if row.startswith("|") else ""
        for a, b in re.findall(r"E(\d{3})(?:\s*[–-]\s*E(\d{3}))?", cell):
            listed |= {f"E{n:03d}" for n in range(int(a), int(b or a) + 1)}
        listed |= set(re.findall(r"E\d{3}", cell))
    assert len(used) > 15, used  # the scan finds the codes
    assert {c: w for c, w in used.items() if c not in listed} == {}


def test_the_fault_code_scan_finds_codes_kept_in_constants_and_messages(tmp_path):
    pkg = tmp_path / "kiosk"
    pkg.mkdir()
    (pkg / "a.py").write_text(
        'TAKEN_OVER = "E604"\nCODES = {"E501": 1}\n'
        'def f(n):\n    raise X(f"broken (code E301) after {n}", code="E300")\n'
        'NOT_CODES = ["E12", "E1234", "XE100", "E100x"]\n'
    )
    assert sorted(fault_codes_in(pkg)) == ["E300", "E301", "E501", "E604"]


def test_the_readme_fault_table_and_the_screens_next_steps_are_one_table():
    """The out-of-service screen's next step per code is kiosk.faults.NEXT_STEPS; the README shows that column."""
    import re

    from kiosk.faults import NEXT_STEPS

    repo = Path(__file__).resolve().parents[1]
    table = (repo / "README.md").read_text(encoding="utf-8").split("## Fault codes")[1].split("\n## ")[0]
    rows = [r for r in table.splitlines() if r.startswith("| E")]
    assert len(rows) > 20
    seen = set()
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        a_b = re.findall(r"E(\d{3})(?:\s*[–-]\s*E(\d{3}))?", cells[0])
        codes = {f"E{n:03d}" for a, b in a_b for n in range(int(a), int(b or a) + 1)} | set(re.findall(r"E\d{3}", cells[0]))
        for code in codes:
            assert NEXT_STEPS.get(code) == cells[-1], (code, cells[-1])
        seen |= codes
    assert sorted(set(NEXT_STEPS) - seen) == []  # and no step the README does not show
