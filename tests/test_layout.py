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
    """setup.py reads the version from pyrovae/__init__.py."""
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
