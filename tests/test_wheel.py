"""The wheel holds what a user imports: the package pyrovae and its metadata, no benchmark or
paper-table program (those live in benchmarks/ of a clone and run from its scripts/)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
#: modules of the benchmarks and paper tables, which the installed package never holds
#: (besides every module whose name starts with ``bench``)
MOVED = {"compare_elbo", "grad_variance", "nll_table", "semisupervised", "ssl"}
#: what a build never reads, anywhere: git's files, environments, caches and earlier builds
CACHES = shutil.ignore_patterns(".git", ".venv", "venv*", "__pycache__", "*.egg-info", ".pytest_cache",
                                ".hypothesis", "build", "dist", "*.pt")
#: at the repository's root also the data sets and runs (pyrovae/data/ is code)
ROOT_ONLY = {"data", ".data", "runs", "exported"}


def _ignore(folder, names):
    return CACHES(folder, names) | (ROOT_ONLY & set(names) if Path(folder) == ROOT else set())


def build_wheel(tmp_path) -> zipfile.ZipFile:
    """The wheel that ``pip wheel`` builds from a copy of the repository (the copy keeps the build's
    egg-info and build folders out of the checkout), offline, with the setuptools at hand."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_ignore)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "--no-index", "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("pyrovae-*.whl")
    return zipfile.ZipFile(wheel)


def test_the_wheel_holds_the_package_and_no_benchmark(tmp_path):
    with build_wheel(tmp_path) as wheel:
        names = wheel.namelist()
        paths = [PurePosixPath(name) for name in names]
        info = [p for p in paths if p.parts[0].endswith(".dist-info")]
        entry_points = [wheel.read(str(p)).decode() for p in info if p.name == "entry_points.txt"]
    assert {p.name for p in info} >= {"METADATA", "RECORD", "WHEEL", "entry_points.txt"}
    outside = [str(p) for p in paths if p.parts[0] != "pyrovae" and p not in info]
    assert outside == [], f"the wheel holds files outside pyrovae/: {outside}"
    programs = [str(p) for p in paths if p.suffix == ".py"
                and (p.stem.startswith("bench") or p.stem in MOVED or "experiments" in p.parts)]
    assert programs == [], f"the wheel holds benchmark or table programs: {programs}"
    # what users run on their runs stays in the package, and so does the training command
    assert {"pyrovae/__init__.py", "pyrovae/cli/__init__.py", "pyrovae/analysis/evaluate.py",
            "pyrovae/analysis/encode.py", "pyrovae/analysis/plot_latent.py"} <= set(names)
    assert "pyrovae-train = pyrovae.cli:main" in entry_points[0]
