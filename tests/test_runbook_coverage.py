"""docs/RUNBOOK.md: every runbook area has rows; every row has a command, existing implementation files and a
test id that exists in the repo (file and test function); each named test carries
`@pytest.mark.runbook("<Section> | <Runbook step>")` for that row and runs the row's command: its source (with
its decorators, and the functions and fixtures of the same file it uses) names the playbook, fab task, CLI
subcommand, role or bench command of the row. The header's faithful/better/worse/missing counts add up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "RUNBOOK.md"
AREAS = [
    "Daily",
    "Weekly",
    "Monthly",
    "Monitoring",
    "Troubleshooting",
    "Update",
    "Rollback",
    "Database maintenance",
    "Backups",
    "Log management",
    "Outage",
    "Data recovery",
    "Config recovery",
    "Performance",
    "Security",
]
TROUBLESHOOTING = [
    "Bot not responding",
    "Database connection",
    "High memory",
    "External API",
    "Performance degradation",
]


def rows() -> list[list[str]]:
    lines = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| Section")
    ]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_table_parses():
    assert len(rows()) >= 40
    assert all(len(r) == 5 for r in rows()), [r for r in rows() if len(r) != 5]


def test_every_area_is_covered():
    sections = {r[0] for r in rows()}
    assert not set(AREAS) - sections
    steps = " ".join(r[1] for r in rows() if r[0] == "Troubleshooting")
    assert all(t in steps for t in TROUBLESHOOTING)


def _test_ids(cell: str) -> list[str]:
    return re.findall(r"`([^`]+::[^`]+)`", cell)


Func = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(path: Path) -> dict[str, ast.AST]:
    """The file's functions and module-level constants (a test may read DATA = load(...)), by name."""
    tree = ast.parse(path.read_text())
    found: dict[str, ast.AST] = {n.name: n for n in ast.walk(tree) if isinstance(n, Func)}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            found.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return found


def _defined(path: Path, name: str) -> bool:
    return isinstance(_functions(path).get(name), Func)


def _markers(func: ast.AST) -> list[str]:
    """The rows of the test's @pytest.mark.runbook("...") decorators."""
    if not isinstance(func, Func):
        return []
    return [
        d.args[0].value
        for d in func.decorator_list
        if isinstance(d, ast.Call)
        and isinstance(d.func, ast.Attribute)
        and d.func.attr == "runbook"
        and ast.unparse(d.func.value) == "pytest.mark"
        and d.args
        and isinstance(d.args[0], ast.Constant)
    ]


def _strings(func: ast.AST, functions: dict[str, ast.AST], seen: set[int] | None = None) -> list[str]:
    """String constants of the test and its decorators, and of the same file's functions (and constants) it
    calls, reads or takes as fixtures (transitively)."""
    seen = seen if seen is not None else set()
    if id(func) in seen:
        return []
    seen.add(id(func))
    nodes = [func, *getattr(func, "decorator_list", [])]
    out = [
        n.value
        for node in nodes
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    # keyword names too: env settings passed as `REDIS_URL=...` name what the test runs
    out += [n.arg for node in nodes for n in ast.walk(node) if isinstance(n, ast.keyword) and n.arg]
    used = {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}
    used |= {a.arg for a in func.args.args} if isinstance(func, Func) else set()
    for name in sorted(used & set(functions)):
        out += _strings(functions[name], functions, seen)
    return out


# What names a row's command: playbooks/<name>.yml, awx/<name>.yml, `fab <task>`, `psychochauffeur <cmd>`,
# `(role <name>)`, `make <target>`, `python -m bench <cmd>`, a systemd unit the procedure runs, a bot setting.
COMMAND_KEYS = [
    r"playbooks/([\w-]+)\.yml",
    r"awx/([\w-]+)\.yml",
    r"\bfab (\w+)",
    r"\bpsychochauffeur ([\w-]+)",
    r"\(role (\w+)\)",
    r"\bmake (\w+)",
    r"-m bench (\w+)",
    r"([\w-]+\.(?:service|timer))\b",
    r"\b((?:BOT|REDIS)_[A-Z0-9_]+)\b",
]


# The lab has no AWX: awx/configure.yml applies the data of awx/controller.yml with the awx.awx modules, so
# its rows name tests of that data (each key checked against the module's options) and of the templates' runs.
ALIASES = {"configure": {"awx/controller.yml"}}


def command_keys(command: str) -> set[str]:
    keys = {k for pattern in COMMAND_KEYS for k in re.findall(pattern, command)}
    if "AWX job templates" in command:
        keys.add("controller_templates")
    return keys | {alias for k in keys for alias in ALIASES.get(k, ())}


def _runs_command(strings: list[str], keys: set[str]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", s) for s in strings for k in keys)


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r[0]}: {r[1]}")
def test_row(row):
    section, step, command, implemented, test = row
    assert command.strip("` "), f"{step}: no command"
    files = re.findall(r"`([^`]+)`", implemented)
    assert files, f"{step}: nothing implements it"
    for f in files:
        assert (REPO / f).is_file(), f"{step}: {f} is missing"
    ids = _test_ids(test)
    assert ids, f"{step}: no test"
    keys = command_keys(command)
    assert keys, f"{step}: no playbook, fab task, CLI command or role named in {command}"
    for test_id in ids:
        path, _, name = test_id.partition("::")
        assert (REPO / path).is_file(), f"{step}: {path} is missing"
        functions = _functions(REPO / path)
        func = functions.get(name.split("[")[0])
        assert isinstance(func, Func), f"{step}: no test {name} in {path}"
        row = f"{section} | {step}"
        assert row in _markers(func), f'{test_id}: no @pytest.mark.runbook("{row}")'
        assert _runs_command(_strings(func, functions), keys), f"{test_id} never names {sorted(keys)}"


def test_every_marker_names_a_row():
    """A test's runbook marker that matches no row is a row renamed or removed: the marker must follow."""
    known = {f"{r[0]} | {r[1]}" for r in rows()}
    stale = [
        (f"{path.relative_to(REPO)}::{name}", row)
        for path in sorted((REPO / "tests").rglob("test_*.py"))
        if "runbook(" in path.read_text()
        for name, func in _functions(path).items()
        for row in _markers(func)
        if row not in known
    ]
    assert not stale, stale


def test_header_counts():
    """The reading of the runbook: each count line's faithful + better + worse + missing = the items counted,
    and the current one is there."""
    text = DOC.read_text()
    counts = re.findall(
        r"(\d+) items: (\d+) implemented faithfully, (\d+) differently and better, (\d+) differently and "
        r"worse, (\d+) missing",
        text,
    )
    assert counts, "docs/RUNBOOK.md states no counts"
    for total, *parts in counts:
        assert sum(map(int, parts)) == int(total), (total, parts)
    assert re.search(r"^- Now \(.*\): \d+ items:", text, re.M), "no current count"
    assert "## Out of scope" in text
