"""Which way imports may point (docs/architecture.md, "Import rules").

Read from the source with ``ast`` (nothing is imported), so a violation names the file and line:

1. Nothing imports the package root for a name (``from reelscore import __version__``); the root
   only re-exports the public API for users.
2. The core never imports a front end; front ends never import each other (the ``reelscore`` CLI
   mounts only what ``FRONT_END_ALLOWED`` lists: Resolve, batch, the job reports, demo/doctor).
3. The pure modules (whose docstrings are the spec) import no ffmpeg, network or pipeline code.
4. Only ``ffmpeg_cli`` (and ``signals``, which kills child process groups) runs processes; only
   ``render_ffmpeg`` (the picture's decoders and encoder, behind ``render``) builds commands with
   ffmpeg-python.
5. No import cycles between reelscore modules (``TYPE_CHECKING`` imports excepted).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "plugin" / "reelscore"

FRONT_ENDS = {
    "reelscore.cli", "reelscore.console", "reelscore.hook", "reelscore.demo",
    "reelscore.resolve.cli", "reelscore.resolve.dialog", "reelscore.__main__",
    "reelscore.batch_cli", "reelscore.reports_cli", "reelscore.tools_cli",
}
# front end -> the front ends it may import
FRONT_END_ALLOWED = {
    "reelscore.cli": {"reelscore.console", "reelscore.resolve.cli", "reelscore.batch_cli",
                      "reelscore.reports_cli", "reelscore.tools_cli"},
    "reelscore.resolve.cli": {"reelscore.console"},
    "reelscore.resolve.dialog": set(),
    "reelscore.hook": set(),
    "reelscore.demo": set(),
    "reelscore.console": set(),
    "reelscore.__main__": {"reelscore.cli"},
    "reelscore.batch_cli": {"reelscore.console"},
    "reelscore.reports_cli": {"reelscore.console"},
    "reelscore.tools_cli": {"reelscore.console", "reelscore.demo"},  # `reelscore demo` runs it
}
PURE = {"reelscore.picture", "reelscore.scenes", "reelscore.plan", "reelscore.limits",
        "reelscore.timecode", "reelscore.describe", "reelscore.errors", "reelscore._version",
        "reelscore.pathmap", "reelscore.volume_keys", "reelscore.loudness_meter",
        "reelscore.loudness_limiter", "reelscore.loudness_normaliser"}
IMPURE_FOR_PURE = ("reelscore.ffmpeg_cli", "reelscore.render", "reelscore.render_sources",
                   "reelscore.render_ffmpeg", "reelscore.providers",
                   "reelscore.pipeline", "reelscore.job", "reelscore.resolve", "httpx",
                   "subprocess", "ffmpeg")
PROCESS_RUNNERS = {"reelscore.ffmpeg_cli", "reelscore.signals"}
FFMPEG_COMMAND_BUILDERS = {"reelscore.render_ffmpeg"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, whether the name came from the package root) per import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, False) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub in MODULES:
                        found.append((sub, child.lineno, False))
                    else:
                        found.append((base, child.lineno, base == "reelscore"))
            visit(child)

    visit(tree)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def test_nothing_imports_the_package_root():
    bad = [f"{_where(m, line)} imports a name from the package root"
           for m, imps in GRAPH.items() if m != "reelscore"
           for target, line, from_root in imps if from_root]
    assert not bad, "\n".join(bad)


def test_core_never_imports_a_front_end_and_front_ends_not_each_other():
    bad = []
    for m, imps in GRAPH.items():
        for target, line, _ in imps:
            if target not in FRONT_ENDS or target == m:
                continue
            if m in FRONT_ENDS:
                if target not in FRONT_END_ALLOWED.get(m, set()):
                    bad.append(f"{_where(m, line)}: front end {m} imports front end {target}")
            elif m != "reelscore":
                bad.append(f"{_where(m, line)}: core module {m} imports front end {target}")
    assert not bad, "\n".join(bad)


def test_pure_modules_stay_pure():
    bad = [f"{_where(m, line)}: pure module {m} imports {target}"
           for m in PURE if m in GRAPH for target, line, _ in GRAPH[m]
           if any(target == p or target.startswith(p + ".") for p in IMPURE_FOR_PURE)]
    assert not bad, "\n".join(bad)


def test_one_place_runs_processes_and_one_builds_ffmpeg_commands():
    bad = []
    for m, imps in GRAPH.items():
        for target, line, _ in imps:
            if target == "subprocess" and m not in PROCESS_RUNNERS:
                bad.append(f"{_where(m, line)}: {m} imports subprocess (use reelscore.ffmpeg_cli)")
            if target == "ffmpeg" and m not in FFMPEG_COMMAND_BUILDERS:
                bad.append(f"{_where(m, line)}: {m} imports ffmpeg-python (only render_ffmpeg "
                           "builds commands)")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = {m: sorted({t for t, _, _ in imps if t in MODULES and t != m and t != "reelscore"})
             for m, imps in GRAPH.items() if m != "reelscore"}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
