"""dvc.yaml's deps match the code: every pipeline/ module a stage's command imports, directly or
through other modules (imports inside functions included), is a dependency of that stage, so that
editing it makes the stage's outputs stale."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ("pipeline", "stages")


def module_file(name: str) -> Path | None:
    """The file of a local module (pipeline.x.y or stages.x), or None for a third-party one."""
    if name.split(".")[0] not in LOCAL:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in `path`, with `from a import b` also
    counting a.b (b may be a submodule) and every parent package (importing a.b runs a/__init__)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 2)}


def holds_code(path: Path) -> bool:
    """False for a package marker holding a docstring alone (nothing in it can change an output)."""
    body = ast.parse(path.read_text()).body
    return not (len(body) <= 1 and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body))


def local_closure(path: Path) -> set[Path]:
    """The local files that `path` imports, transitively (itself included)."""
    seen, todo = set(), [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += [f for f in map(module_file, imported_modules(current)) if f is not None]
    return seen


def command_modules() -> dict[str, Path]:
    """`python -m stages <command>` -> the file of the stage module defining it (from stages/__main__.py)."""
    tree = ast.parse((ROOT / "stages/__main__.py").read_text())
    defined_in = {alias.asname or alias.name: node.module for node in tree.body
                  if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stages.")
                  for alias in node.names}
    commands = {}
    for node in ast.walk(tree):  # app.command("train")(train)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Name) and node.func.args \
                and isinstance(node.func.args[0], ast.Constant):
            commands[node.func.args[0].value] = module_file(defined_in[node.args[0].id])
    return commands


def dvc_stages() -> list[tuple[str, str, list[str]]]:
    """(stage name, command, deps) of dvc.yaml's stages, a foreach stage once (its deps are templated alike)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        out.append((name, " ".join(body["cmd"].split()), [d if isinstance(d, str) else next(iter(d))
                                                          for d in body.get("deps", [])]))
    return out


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


def test_the_import_walk_sees_function_level_imports_and_submodules():
    files = {p.relative_to(ROOT).as_posix() for p in local_closure(ROOT / "stages/translate.py")}
    assert {"pipeline/inference.py", "pipeline/models/__init__.py", "pipeline/models/pix2pix.py",
            "pipeline/nets/__init__.py", "pipeline/config.py", "stages/common.py"} <= files


@pytest.mark.parametrize("name,cmd,deps", dvc_stages(), ids=[s[0] for s in dvc_stages()])
def test_every_stage_depends_on_every_module_its_command_imports(name, cmd, deps):
    commands = command_modules()
    words = cmd.split()
    assert words[:3] == ["python", "-m", "stages"], f"{name}: {cmd}"
    stage_file = commands[words[3]]
    # `python -m stages` runs stages/__main__.py first: its own pipeline imports count for every stage
    runner = {f for name in imported_modules(ROOT / "stages/__main__.py") if name.startswith("pipeline")
              if (f := module_file(name)) is not None}
    files = local_closure(stage_file).union(*map(local_closure, runner))
    missing = sorted(p.relative_to(ROOT).as_posix() for p in files
                     if holds_code(p) and not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} ({stage_file.name}) imports modules missing from its deps: {missing}"


@pytest.mark.parametrize("name,cmd,deps", dvc_stages(), ids=[s[0] for s in dvc_stages()])
def test_no_stage_depends_on_code_its_command_never_imports(name, cmd, deps):
    """An extra code dep re-runs a stage for edits that cannot change its outputs (the segmenter
    once re-trained for every change to the models)."""
    stage_file = command_modules()[cmd.split()[3]]
    runner = {f for name in imported_modules(ROOT / "stages/__main__.py") if name.startswith("pipeline")
              if (f := module_file(name)) is not None}
    files = {p.relative_to(ROOT).as_posix() for p in local_closure(stage_file).union(*map(local_closure, runner))
             if holds_code(p)}
    extra = [d for d in deps if d.startswith(("pipeline/", "stages/"))
             and not any(f == d.rstrip("/") or f.startswith(d.rstrip("/") + "/") for f in files)]
    assert not extra, f"dvc.yaml stage {name!r} depends on code its command never imports: {extra}"


def test_byte_code_is_not_part_of_a_code_dependency():
    """Imports write pipeline/**/__pycache__ where PYTHONDONTWRITEBYTECODE is unset: DVC must not hash
    them into a stage's code deps, or every clone's `dvc status` would call the stages stale."""
    paths = ["pipeline/nets/__pycache__/resnet.cpython-311.pyc", "stages/stray.pyc"]
    done = subprocess.run([sys.executable, "-m", "dvc", "check-ignore", *paths], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == paths
    # and the sources stay hashed
    kept = subprocess.run([sys.executable, "-m", "dvc", "check-ignore", "pipeline/nets/resnet.py"], cwd=ROOT,
                          capture_output=True, text=True)
    assert kept.returncode == 1 and not kept.stdout.strip()
