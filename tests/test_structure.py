"""The import rules of the layout (design.md): one-way imports (admin → producers → worker), no Celery below the
tasks, no sandbox in the worker.

Imports are read from the source (every `import`, at any depth, except under `if TYPE_CHECKING:`), so a cycle
hidden behind a function-level import counts.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worker", "producers", "admin", "sandbox")
# Each of these imports only the ones after it; the sandbox stands apart (test_no_worker_module_imports_the_sandbox).
LAYERS = ("admin", "producers", "worker")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
            and getattr(block.test, "id", "") == "TYPE_CHECKING" for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            # `from package import submodule` needs the submodule, not what the package's __init__ imports.
            found |= names if names <= MODULES.keys() else names | {node.module}
    return found


MODULES = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        raw = _imports(path)
        ours = {m for m in raw if m in MODULES}
        graph[name] = ours | {m for m in raw if m.split(".")[0] not in PACKAGES}
    return graph


GRAPH = _graph()


def _reach(start: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _third_party(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules if m.split(".")[0] not in PACKAGES}


def test_keap_client_steps_runner_and_wiring_never_import_celery():
    celery_free = [m for m in GRAPH if m.startswith(("worker.keap", "worker.steps", "worker.contract", "worker.ledger",
                                                     "worker.throttle"))]
    celery_free += ["worker.runner", "worker.context", "worker.pipeline", "worker.lua"]
    offenders = {m: sorted(_third_party(_reach(m) | {m}) & {"celery", "kombu"}) for m in celery_free}
    assert {m: v for m, v in offenders.items() if v} == {}


def test_no_worker_module_imports_the_sandbox():
    offenders = [m for m in GRAPH if m.startswith("worker") and any(x.startswith("sandbox") for x in _reach(m))]
    assert offenders == []


def test_producers_and_admin_send_work_by_task_name_and_never_import_the_task_module():
    offenders = [m for m in GRAPH if m.startswith(("producers", "admin")) and "worker.tasks" in _reach(m)]
    assert offenders == []


def test_imports_flow_one_way_admin_producers_worker():
    upward = {m: sorted(n for n in deps if n.split(".")[0] in LAYERS[:LAYERS.index(m.split(".")[0])])
              for m, deps in GRAPH.items() if m.split(".")[0] in LAYERS}
    assert {m: v for m, v in upward.items() if v} == {}


def test_there_is_no_import_cycle():
    ours = {m: {n for n in deps if n in GRAPH} for m, deps in GRAPH.items()}
    cycles = sorted(m for m in ours if m in _reach(m, ours))
    assert cycles == []


def test_the_checks_see_imports_at_any_depth():
    # Guards the guard: a function-level import (the demo's, kept lazy for the sandbox extra) is found.
    assert "admin.demo" in GRAPH["admin.cli.service"]
    assert "worker.keap.contacts" in GRAPH["worker.keap.client"]


def test_every_step_of_the_pipeline_is_a_module_of_worker_steps_with_a_run():
    from worker import pipeline

    assert all(callable(step.run) and (ROOT / "worker" / "steps" / f"{step.name}.py").is_file()
               for step in pipeline.STEPS)
    assert len({step.task for step in pipeline.STEPS}) == len(pipeline.STEPS)


def test_every_setting_is_documented_in_the_env_example():
    from worker.settings import Settings

    text = (ROOT / "deploy" / ".env.example").read_text()
    assert [name.upper() for name in Settings.model_fields if f"\n{name.upper()}=" not in text] == []


def test_lua_lives_in_lua_files_each_naming_its_preambles():
    from worker import lua

    in_python = [str(path.relative_to(ROOT)) for path in MODULES.values() if "redis.call(" in path.read_text()]
    assert in_python == []
    files = sorted((ROOT / "worker").rglob("lua/*.lua"))
    named = {(path.parent, part.strip()) for path in files for line in path.read_text().splitlines()
             if line.startswith("-- Preamble: ") for part in line[13:].split("(")[0].split(",")}
    scripts = [path for path in files if (path.parent, path.stem) not in named]
    assert len(scripts) >= 15 and all(path.exists() for folder, name in named if name != "none"
                                      for path in [folder / f"{name}.lua"])
    for path in scripts:  # every script loads, after the preambles its header names
        assert lua.load(".".join(path.relative_to(ROOT).parts[:-2]), path.stem).endswith(path.read_text())


def test_no_module_is_over_400_lines():
    assert {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400} == {}
