"""The import rules of docs/architecture.md, read off the source: each package of
``genreflow`` imports only the packages beneath it (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import genreflow

PACKAGE = Path(genreflow.__file__).parent
TESTS = Path(__file__).parent

#: Test folders that are not a package's: whole runs across stages, and the test helpers.
CROSS_CUTTING = {"end_to_end", "support"}

_SHARED = {"core", "metrics", "data"}
#: What each package may import from genreflow (``genreflow.__version__`` is open to all).
ALLOWED = {
    "core": set(),
    "metrics": {"core"},
    "data": {"core"},
    "snakefile": {"core"},  # the Snakefile's helpers: never a stage, so Snakemake stays light
    "demo": {"core", "data"},
    "spectrograms": _SHARED,
    "classical": _SHARED | {"spectrograms"},
    "backbones": _SHARED | {"spectrograms"},
    "prediction": _SHARED | {"spectrograms", "classical"},
    "training": _SHARED | {"spectrograms", "classical", "backbones", "prediction"},
    "evaluation": _SHARED | {"spectrograms", "classical", "prediction"},
    "serve": _SHARED | {"prediction"},
    "report": {"core"},  # reads files, not objects
    "commands": set(),  # filled below: everything but the CLI itself
    "cli": {"core", "commands"},
    "__main__": {"cli"},
}
ALLOWED["commands"] = set(ALLOWED) - {"commands", "cli", "__main__"}


def imports_by_package() -> dict[str, set[tuple[str, str]]]:
    """``{package: {(imported package, file), ...}}`` for every ``genreflow.X`` import."""
    found: dict[str, set[tuple[str, str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        package = rel.parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        targets = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
        for target in targets:
            parts = target.split(".")
            if parts[0] == "genreflow" and len(parts) > 1 and parts[1] != package:
                found.setdefault(package, set()).add((parts[1], rel.as_posix()))
    return found


def test_every_package_has_a_rule():
    packages = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()}
    packages = {p for p in packages if not p.startswith("_") and p not in {"schemas"}}
    assert packages | {"__main__"} == set(ALLOWED)


def test_imports_run_only_downwards():
    wrong = sorted(
        f"{file} imports genreflow.{target} ({package} may import: "
        f"{', '.join(sorted(ALLOWED[package])) or 'nothing of genreflow'})"
        for package, edges in imports_by_package().items()
        for target, file in edges
        if target not in ALLOWED[package] | {"__init__"}
    )
    assert wrong == []


def test_no_two_packages_import_each_other():
    edges = {(p, t) for p, found in imports_by_package().items() for t, _ in found}
    assert sorted((p, t) for p, t in edges if (t, p) in edges) == []


def test_the_rules_themselves_have_no_cycle():
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, " -> ".join((*path, package))
        if package not in done:
            for below in ALLOWED[package]:
                visit(below, (*path, package))
            done.add(package)

    for package in ALLOWED:
        visit(package, ())


def test_a_modules_tests_are_found_by_its_name():
    """``tests/<package>/test_<module>.py`` tests ``genreflow/<package>/<module>.py``."""
    wrong = []
    for path in sorted(TESTS.rglob("test_*.py")):
        rel = path.relative_to(TESTS)
        if rel.parts[0] in CROSS_CUTTING or rel.name == Path(__file__).name:
            continue
        module = PACKAGE.joinpath(*rel.parts[:-1], rel.name.removeprefix("test_"))
        if not module.is_file():
            wrong.append(f"tests/{rel.as_posix()}: no {module.relative_to(PACKAGE.parent)}")
    assert wrong == []


#: Command functions that parse or check arguments; the rest of a command module is logic.
_ARGUMENT_FUNCTIONS = ("add_arguments", "add_config_arguments", "add_inference_threads_argument")


def _logic_lines(function: ast.FunctionDef, source: list[str]) -> int:
    """Source lines of ``function``'s body, docstring, imports, comments and blanks left out."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    lines = {
        number
        for statement in body
        if not isinstance(statement, ast.Import | ast.ImportFrom)
        for number in range(statement.lineno, statement.end_lineno + 1)
    }
    return sum(
        1 for n in lines if source[n - 1].strip() and not source[n - 1].lstrip().startswith("#")
    )


def test_a_command_parses_its_arguments_and_calls_its_stage():
    """At most ~40 lines of logic in a command module, argument parsing and checks aside."""
    heavy = {}
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        functions = [
            node
            for node in ast.parse(text).body
            if isinstance(node, ast.FunctionDef)
            and node.name not in _ARGUMENT_FUNCTIONS
            and not node.name.startswith(("parse_", "_check_"))
        ]
        lines = sum(_logic_lines(f, text.splitlines()) for f in functions)
        if lines > 40:
            heavy[path.name] = lines
    assert heavy == {}
