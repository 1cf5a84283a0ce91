"""The shape issues 10 and 26 ask for: no function in webapp/ over 50 lines, no view over 20,
no module over 400.

A function's length runs from its `def` line to its last line (docstring and comments count,
decorators do not). A view is a function decorated with a route of a blueprint or an app
(`@bp.route`, `@bp.get`, `@api.post`, ...). A module's length is its number of lines, all of
them. Read with `ast`, so nothing is imported or run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"
MAX_FUNCTION_LINES = 50
MAX_VIEW_LINES = 20
MAX_MODULE_LINES = 400
ROUTE_DECORATORS = {"route", "get", "post", "put", "patch", "delete"}

#: What may stay longer for now: "path:qualified name" -> (the most lines it may have, why).
#: The length is today's, so an entry cannot grow; an entry that is no longer needed fails the
#: test below, so that the list only shrinks. Keep it empty where possible.
ALLOWED: dict[str, tuple[int, str]] = {}

#: The same for modules: "path" -> (the most lines it may have, why). Only shrinks.
ALLOWED_MODULES: dict[str, tuple[int, str]] = {}


@dataclass(frozen=True)
class Function:
    key: str  # "webapp/x.py:Class.method"
    lines: int
    view: bool

    @property
    def limit(self) -> int:
        return MAX_VIEW_LINES if self.view else MAX_FUNCTION_LINES

    @property
    def kind(self) -> str:
        return "view" if self.view else "function"


@dataclass(frozen=True)
class Module:
    key: str  # "webapp/x.py"
    lines: int
    limit = MAX_MODULE_LINES
    kind = "module"


def _is_route(decorator: ast.expr) -> bool:
    """`@<blueprint or app>.route(...)` / `.get(...)` / `.post(...)` and the other verbs."""
    return (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in ROUTE_DECORATORS
    )


def functions_of(path: Path, root: Path) -> list[Function]:
    """Every function and method in the file, nested ones too, with its length."""
    found: list[Function] = []
    relative = path.relative_to(root).as_posix()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                view = any(_is_route(d) for d in child.decorator_list)
                found.append(Function(f"{relative}:{name}", lines, view))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return found


def all_functions() -> list[Function]:
    root = WEBAPP.parent
    return [f for path in sorted(WEBAPP.rglob("*.py")) for f in functions_of(path, root)]


def too_long(found: list[Function] | list[Module], allowed=ALLOWED) -> list[str]:
    """The functions (or modules) over their limit or their allowance, one line each."""
    problems = []
    for item in found:
        limit = allowed.get(item.key, (item.limit, ""))[0]
        if item.lines > limit:
            problems.append(f"{item.key}: {item.kind} of {item.lines} lines (max {limit})")
    return problems


def stale(found: list[Function] | list[Module], allowed: dict) -> list[str]:
    """The allowances no longer needed: gone, or back within the limit."""
    by_key = {item.key: item for item in found}
    return [key for key in allowed if key not in by_key or by_key[key].lines <= by_key[key].limit]


def test_no_function_over_50_lines_and_no_view_over_20():
    problems = too_long(all_functions())
    assert not problems, "split these by responsibility:\n" + "\n".join(problems)


def test_the_allow_list_only_holds_what_still_needs_it():
    found = stale(all_functions(), ALLOWED)
    assert not found, "no longer over the limit, remove from ALLOWED: " + ", ".join(found)


def all_modules(root: Path = WEBAPP) -> list[Module]:
    """Every module under `root` (webapp/**/*.py) with its number of lines."""
    return [
        Module(path.relative_to(root.parent).as_posix(), len(path.read_text("utf-8").splitlines()))
        for path in sorted(root.rglob("*.py"))
    ]


def test_no_module_over_400_lines():
    problems = too_long(all_modules(), ALLOWED_MODULES)
    assert not problems, "one job a module, named by its file:\n" + "\n".join(problems)


def test_the_module_allow_list_only_holds_what_still_needs_it():
    found = stale(all_modules(), ALLOWED_MODULES)
    assert not found, "no longer over the limit, remove from ALLOWED_MODULES: " + ", ".join(found)


def test_the_module_guard_counts_every_line(tmp_path):
    package = tmp_path / "webapp" / "pkg"
    package.mkdir(parents=True)
    (package / "fine.py").write_text("x = 1\n" * MAX_MODULE_LINES, encoding="utf-8")
    (package / "big.py").write_text('"""doc"""\n' + "\n" * MAX_MODULE_LINES, encoding="utf-8")
    modules = all_modules(tmp_path / "webapp")
    assert modules == [Module("webapp/pkg/big.py", 401), Module("webapp/pkg/fine.py", 400)]
    assert too_long(modules, {}) == ["webapp/pkg/big.py: module of 401 lines (max 400)"]
    assert too_long(modules, {"webapp/pkg/big.py": (401, "for now")}) == []
    assert stale(modules, {"webapp/pkg/fine.py": (400, "fixed")}) == ["webapp/pkg/fine.py"]


def test_each_package_says_what_it_owns_and_its_entry_points():
    """A newcomer starts at a package's __init__.py: what it owns, and what a caller uses."""
    vague = []
    for init in sorted(WEBAPP.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if len(doc.splitlines()) < 3 or "Entry point" not in doc:
            vague.append(init.relative_to(WEBAPP.parent).as_posix())
    assert not vague, "say what the package owns and its entry points: " + ", ".join(vague)


SAMPLE = """
from flask import Blueprint

bp = Blueprint("x", __name__)


@bp.get("/short")
def short_view():
    return "ok"


@bp.route("/long", methods=["GET", "POST"])
def long_view():
{view_body}


class Service:
    def method(self):
{function_body}

    def fine(self):
        def inner():
            return 1

        return inner()
"""


def _body(lines: int) -> str:
    """A function body of `lines` lines, indented once."""
    return "\n".join([f"    x{i} = {i}" for i in range(lines - 1)] + ["    return 0"])


def _sample(tmp_path: Path, view_lines: int, method_lines: int) -> list[Function]:
    source = SAMPLE.replace("{view_body}", _body(view_lines)).replace(
        "{function_body}", "    " + _body(method_lines).replace("\n", "\n    ")
    )
    path = tmp_path / "webapp" / "sample.py"
    path.parent.mkdir()
    path.write_text(source, encoding="utf-8")
    return functions_of(path, tmp_path)


@pytest.mark.parametrize(
    ("view_lines", "method_lines", "expected"),
    [
        (19, 49, []),  # 20 and 50 lines with the def line: at the limit is fine
        (20, 49, ["webapp/sample.py:long_view: view of 21 lines (max 20)"]),
        (19, 50, ["webapp/sample.py:Service.method: function of 51 lines (max 50)"]),
    ],
)
def test_the_guard_counts_views_and_functions(tmp_path, view_lines, method_lines, expected):
    functions = _sample(tmp_path, view_lines, method_lines)
    views = {f.key for f in functions if f.view}
    assert views == {"webapp/sample.py:short_view", "webapp/sample.py:long_view"}
    assert "webapp/sample.py:Service.fine.inner" in {f.key for f in functions}
    assert too_long(functions) == expected
