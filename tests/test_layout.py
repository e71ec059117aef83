"""The package layout keeps its architecture (issue 10, point 7), read from the import
statements of the source (every import: module level, in functions, under TYPE_CHECKING).

* ``dispatcher.kernel`` (states, SQL loader, clock, msisdn) imports nothing else of
  ``dispatcher`` or ``campaigns``;
* ``campaigns`` (the campaign domain) imports only the kernel from ``dispatcher``;
* ``dispatcher.policy`` is pure: the standard library, the kernel, itself, and the pure
  parts of ``smpp`` (no I/O, no third-party package);
* ``smpp`` (the protocol) imports nothing of ``dispatcher`` or ``campaigns``;
* no import cycle among the modules of ``dispatcher`` and ``campaigns``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dispatcher", "campaigns", "smpp")
KERNEL = "dispatcher.kernel"
POLICY = "dispatcher.policy"
#: smpp modules of pure functions and values, which the policy may use.
PURE_SMPP = frozenset({"smpp.constants", "smpp.outcome", "smpp.timefmt"})


@cache
def modules() -> dict[str, Path]:
    """Every module of the first-party packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(name: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The modules an import statement in module ``name`` names (a ``from`` import of a
    submodule names the submodule; of an attribute, the module holding it)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = name.split(".")
        if modules()[name].name != "__init__.py":
            package = package[:-1]
        prefix = ".".join(package[: len(package) - node.level + 1])
        base = f"{prefix}.{base}" if base else prefix
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules() else base


@cache
def imports_of(name: str) -> frozenset[str]:
    """Every module that module ``name`` imports, anywhere in its source."""
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"), str(modules()[name]))
    return frozenset(
        target
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in _imported(name, node)
    )


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _in_project(name: str, *packages: str) -> bool:
    return any(_within(name, package) for package in packages)


def test_modules_are_found() -> None:
    """The walk sees the kernel, the policy, campaigns and smpp (the rules are not vacuous)."""
    names = modules()
    for expected in (
        "dispatcher.kernel.states",
        "dispatcher.kernel.sql",
        "dispatcher.kernel.clock",
        "dispatcher.kernel.msisdn",
        "dispatcher.policy.calendar",
        "campaigns.repository",
        "smpp.session",
    ):
        assert expected in names
    assert "dispatcher.kernel.states" in imports_of("campaigns.models")


def test_kernel_imports_nothing_else_of_the_service() -> None:
    """The kernel imports no module of dispatcher or campaigns outside the kernel."""
    offences = [
        f"{name} → {target}"
        for name in modules()
        if _within(name, KERNEL)
        for target in imports_of(name)
        if _in_project(target, "dispatcher", "campaigns") and not _within(target, KERNEL)
    ]
    assert offences == []


def test_campaigns_import_only_the_kernel_of_dispatcher() -> None:
    """The campaign domain uses the shared kernel of dispatcher and nothing else of it."""
    offences = [
        f"{name} → {target}"
        for name in modules()
        if _within(name, "campaigns")
        for target in imports_of(name)
        if _in_project(target, "dispatcher") and not _within(target, KERNEL)
    ]
    assert offences == []


def _stdlib(target: str) -> bool:
    return target.split(".")[0] in sys.stdlib_module_names


def test_policy_is_pure() -> None:
    """The policy imports the standard library, the kernel, itself and pure smpp only."""
    offences = [
        f"{name} → {target}"
        for name in modules()
        if _within(name, POLICY)
        for target in imports_of(name)
        if not (_stdlib(target) or _in_project(target, KERNEL, POLICY) or target in PURE_SMPP)
    ]
    assert offences == []


def test_pure_smpp_is_pure() -> None:
    """The smpp modules the policy may use import only the standard library and each other."""
    offences = [
        f"{name} → {target}"
        for name in sorted(PURE_SMPP)
        for target in imports_of(name)
        if not (_stdlib(target) or target in PURE_SMPP)
    ]
    assert offences == []


def test_smpp_knows_no_business() -> None:
    """The protocol library imports nothing of dispatcher or campaigns."""
    offences = [
        f"{name} → {target}"
        for name in modules()
        if _within(name, "smpp")
        for target in imports_of(name)
        if _in_project(target, "dispatcher", "campaigns")
    ]
    assert offences == []


def _cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None (a
    depth-first search; a module whose imports were all explored is done)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
                done.add(path.pop())
            elif following in path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset()}, None),
        ({"a": frozenset({"b", "c"}), "b": frozenset({"c"}), "c": frozenset()}, None),
        (
            {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})},
            ["a", "b", "c", "a"],
        ),
        ({"a": frozenset({"a"})}, ["a", "a"]),
    ],
)
def test_cycle_search(graph: dict[str, frozenset[str]], expected: list[str] | None) -> None:
    """The cycle search finds a loop, and reports none in a diamond or a chain."""
    assert _cycle(graph) == expected


def test_no_import_cycle() -> None:
    """No module of dispatcher or campaigns imports itself through others."""
    names = [n for n in modules() if _in_project(n, "dispatcher", "campaigns")]
    graph = {name: frozenset(t for t in imports_of(name) if t in names) for name in names}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])
