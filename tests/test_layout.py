"""The package's shape: imports flow one way and load only what is used."""
import ast
from pathlib import Path

import pytest

from helpers import run_python

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyrovae"


def pyrovae_imports(path: Path):
    """Absolute names of the pyrovae modules that ``path`` imports (relative imports resolved),
    with the line of each import."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".")[:-1]  # pyrovae/training/trainer.py and pyrovae/training/__init__.py: pyrovae.training
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import mod` may import a module, so count both the package and pkg.mod
            names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "pyrovae" or name.startswith("pyrovae."):
                yield name, node.lineno


def library_modules():
    """Every module under pyrovae/ except the user's programs (analysis/) and the command lines."""
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if not {"analysis", "cli"} & set(p.relative_to(PACKAGE).parts)]


def imported_names(path: Path):
    """The absolute names of every module that ``path`` imports (relative imports resolved), with
    the line of each import."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            yield ".".join(base + ([node.module] if node.module else [])), node.lineno


def test_import_loads_neither_matplotlib_nor_tensorboard():
    code = "import pyrovae, sys; print('matplotlib' in sys.modules, 'torch.utils.tensorboard' in sys.modules)"
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"], "import pyrovae loaded matplotlib or TensorBoard"


def test_cli_imports_no_application():
    code = "import pyrovae.cli, sys; print(sorted(m for m in sys.modules if m.startswith('pyrovae.analysis')))"
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_the_programs(path):
    bad = [(name, line) for name, line in pyrovae_imports(path)
           if name == "pyrovae.analysis" or name.startswith("pyrovae.analysis.")]
    assert not bad, f"{path.relative_to(ROOT)} imports the programs: {bad}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_package_never_imports_the_benchmarks(path):
    """benchmarks/ is not installed with the package: nothing under pyrovae/ imports it."""
    bad = [(name, line) for name, line in imported_names(path)
           if name == "benchmarks" or name.startswith("benchmarks.")]
    assert not bad, f"{path.relative_to(ROOT)} imports benchmarks/, which is not installed: {bad}"


@pytest.mark.parametrize("name, allowed", [("networks", set()), ("_pyro_wrapped", set()),
                                           ("likelihoods", {"pyrovae.errors", "pyrovae.model._pyro_wrapped"})])
def test_networks_and_likelihoods_stand_alone(name, allowed):
    """Networks and likelihoods import nothing from the rest of the package (the likelihoods
    only the exceptions a user can act on, and their own wrapper for torch distributions,
    which imports nothing)."""
    path = PACKAGE / "model" / f"{name}.py"
    found = {n for n, _ in pyrovae_imports(path)}
    # `from ..errors import DataError` reads as pyrovae.errors and pyrovae.errors.DataError
    found = {n for n in found if not any(n == a or n.startswith(a + ".") for a in allowed)}
    assert not found, f"pyrovae/model/{name}.py imports {sorted(found)}"


def test_import_resolution_is_checked():
    """The static checks see relative imports: trainer.py reaches into infer/ and model/."""
    found = {n for n, _ in pyrovae_imports(PACKAGE / "training" / "trainer.py")}
    assert "pyrovae.infer.svi" in found and "pyrovae.model.base" in found


def test_one_version():
    """setup.py reads the version from pyrovae/_version.py, which the package re-exports."""
    import pyrovae

    result = run_python("setup.py", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == pyrovae.__version__


def test_paths_into_the_repository_resolve():
    """Programs that start scripts find them from their new folder."""
    from benchmarks.bench_ddp import SCRIPT

    assert SCRIPT.is_file(), SCRIPT


def test_every_subpackage_is_packaged():
    """setup.py's find_packages sees every folder (each has an __init__.py, none is git-ignored)."""
    import shutil
    import subprocess

    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=["pyrovae", "pyrovae.*"]))
    folders = {"pyrovae." + p.name for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert folders <= found, f"not packaged: {sorted(folders - found)}"
    if not shutil.which("git"):
        return
    tracked = subprocess.run(["git", "ls-files", "pyrovae"], capture_output=True, text=True, cwd=ROOT)
    if tracked.returncode == 0 and tracked.stdout:  # a git checkout
        missing = [f"pyrovae/{p.name}/__init__.py" for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))
                   and f"pyrovae/{p.name}/__init__.py" not in tracked.stdout.split()]
        assert not missing, f"not in git: {missing}"


#: the floors of the package, bottom to top: a module imports modules of its own floor and of
#: the floors below, never one above
FLOORS = (("pyrovae.errors", "pyrovae.atomic", "pyrovae._version", "pyrovae.environment"),
          ("pyrovae.data",), ("pyrovae.model",), ("pyrovae.infer",), ("pyrovae.training",),
          ("pyrovae.export", "pyrovae.analysis"), ("pyrovae.cli",), ("pyrovae",))


def import_graph(package: Path = PACKAGE):
    """Module name -> {imported module name: line of its first import}, over every module of
    ``package`` and every import in it (at the top, inside functions, under ``TYPE_CHECKING``).
    ``from pkg import name`` is an import of the module ``pkg.name`` where there is one, else of
    ``pkg``; the parent packages that Python initializes on the way are not counted."""
    def module_name(path):  # pyrovae/data/datasets.py: pyrovae.data.datasets; pyrovae/data/__init__.py: pyrovae.data
        parts = path.relative_to(package.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    paths = {module_name(p): p for p in sorted(package.rglob("*.py"))}
    graph = {}
    for module, path in paths.items():
        found = list(pyrovae_imports(path))
        # the helper gives both `pkg` and `pkg.name` for `from pkg import name`: keep the longer
        names = [(n, line) for n, line in found if not any(o.startswith(n + ".") and at == line for o, at in found)]
        edges = graph.setdefault(module, {})
        for name, line in names:
            target = max((m for m in paths if name == m or name.startswith(m + ".")), key=len, default=None)
            if target is not None and target != module:
                edges.setdefault(target, line)
    return graph


def floor_of(module: str) -> int:
    """The index in :data:`FLOORS` of ``module``'s floor (the longest prefix that names it;
    ``pyrovae`` names the package's own __init__.py alone)."""
    matches = [(len(prefix), i) for i, floor in enumerate(FLOORS) for prefix in floor
               if module == prefix or (prefix != "pyrovae" and module.startswith(prefix + "."))]
    assert matches, f"{module} is on no floor: add it (or its folder) to FLOORS in tests/test_layout.py"
    return max(matches)[1]


def import_circle(graph):
    """A circle of ``graph`` as "a (line i) -> b (line j) -> a" (a imports b at its line i), or None."""
    state, path = {}, []  # state: 1 while on the path from the start, 2 when every way out is searched

    def visit(module):
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                circle = path[path.index(target):] + [target]
                return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(circle, circle[1:])) + f" -> {target}"
            found = None if target in state else visit(target)
            if found:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        found = None if module in state else visit(module)
        if found:
            return found
    return None


def imports_up_a_floor(graph):
    """Each import of ``graph`` from a module to one of a higher floor, as a line of text."""
    return [f"{m} (floor {floor_of(m)}) imports {t} (floor {floor_of(t)}) at line {line}"
            for m, edges in sorted(graph.items()) for t, line in sorted(edges.items()) if floor_of(t) > floor_of(m)]


def test_import_checks_see_every_import(tmp_path, monkeypatch):
    """The checks below find a circle closed by an import under TYPE_CHECKING and imports up a
    floor inside a function and from the package's __init__.py, in a package made for the test."""
    files = {"__init__.py": "from .data.a import A\n",
             "errors.py": "def version():\n    from . import __version__\n    return __version__\n",
             "data/__init__.py": "", "data/a.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                                  "    from .b import B\nA = 1\n",
             "data/b.py": "from . import a\n\n\ndef f():\n    from ..training.config import C\n",
             "training/__init__.py": "", "training/config.py": "from ..data import b\nC = 1\n"}
    for name, text in files.items():
        (tmp_path / "pyrovae" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pyrovae" / name).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)  # pyrovae_imports names modules from ROOT
    graph = import_graph(tmp_path / "pyrovae")
    assert graph["pyrovae"] == {"pyrovae.data.a": 1}
    assert import_circle(graph) == "pyrovae.data.a (line 4) -> pyrovae.data.b (line 1) -> pyrovae.data.a"
    assert imports_up_a_floor(graph) == [
        "pyrovae.data.b (floor 1) imports pyrovae.training.config (floor 4) at line 5",
        "pyrovae.errors (floor 0) imports pyrovae (floor 7) at line 2"]


def test_every_module_is_on_a_floor():
    """Every module of pyrovae/ has a floor, and the graph holds relative and call-time imports."""
    graph = import_graph()
    assert "pyrovae.model.base" in graph["pyrovae.training.trainer"]  # relative imports resolved
    assert "pyrovae.data.images" in graph["pyrovae.data.sources"]  # an import inside a function
    for module in graph:
        floor_of(module)


def test_no_import_circle():
    """No module imports itself through others: the modules of pyrovae/ form no circle."""
    circle = import_circle(import_graph())
    assert circle is None, f"import circle (each module imports the next at the line given): {circle}"


def test_no_import_up_a_floor():
    """No module imports one of a higher floor (:data:`FLOORS`): pyrovae/__init__.py, the top,
    may import anything, and a subpackage's __init__.py stands on its package's floor."""
    upward = imports_up_a_floor(import_graph())
    assert not upward, "imports up a floor:\n" + "\n".join(upward)
