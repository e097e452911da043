"""Settings from a file (``--config FILE``): a JSON or YAML object of :class:`TrainConfig` settings,
or a run's own ``config.json``, whose ``settings`` object is taken (the rest of the record,
``run_id``, ``resolved``, ``versions``..., describes the run and is not a setting).

Every key must be a setting and every value of the setting's type (numbers for floats, whole
numbers for integers, true/false for on-off settings, lists for ``hidden`` and ``channels``,
objects for the ``*_options``, null where a setting may be unset); anything else is refused in
one line naming the key and the file. A run's record keeps the behaviour it was trained with
for the settings it has no key for (:meth:`TrainConfig.from_dict`); a plain file leaves them
at their defaults. The values are checked for range with all the other settings when the run starts.
The file must be a regular file (not a folder, device or FIFO) of at most 16 MiB.

YAML is read with PyYAML's safe loader, with numbers as YAML 1.2 writes them (``1e-3`` is a
number, where YAML 1.1 would read a string).
"""
import json
import os
import re
import stat
import typing
from dataclasses import fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Optional, Tuple

from ..errors import ConfigError, brief, one_line
from .config import TrainConfig

SUFFIXES = (".json", ".yaml", ".yml")
#: keys a run's record may hold from before their setting was renamed (TrainConfig.from_dict reads them)
LEGACY_KEYS = {"likelihood_scale": Optional[float]}
#: the largest config file read: a run's config.json takes a few kilobytes
MAX_BYTES = 16 * 2**20
FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def read_config_file(path) -> Tuple[dict, bool]:
    """(the settings in the file at ``path``, whether it is a run's record), checked key by key."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--config takes a .json, .yaml or .yml file, got {path}")
    text = _read_text(path)
    try:
        data = _parse_json(text, path) if path.suffix.lower() == ".json" else _parse_yaml(text, path)
    except RecursionError:
        raise ConfigError(f"{path} nests lists or objects too deeply to be a file of settings; give a file of "
                          "settings (see docs/flags.md)") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds {_kind(data)}, not an object of settings")
    record = isinstance(data.get("settings"), dict)
    settings = data["settings"] if record else data
    check_settings(settings, path, legacy=record)
    return dict(settings), record


def _read_text(path: Path) -> str:
    """The text of the regular file at ``path``, at most :data:`MAX_BYTES` of it: anything else
    (a folder, a device, a FIFO, which would block) is refused without waiting on it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"the config file {path} is not a regular file; give a .json or .yaml file of settings")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"the config file {path} is larger than {MAX_BYTES // 2**20} MiB, far more than any run's "
                          "settings take; give a file of settings")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"cannot read the config file {path}: it is not UTF-8 text ({one_line(error, 80)})") from None


def config_from_file(path) -> Tuple[TrainConfig, bool]:
    """(the :class:`TrainConfig` of the file at ``path``, unvalidated; whether it is a run's record)."""
    settings, record = read_config_file(path)
    if record:
        return TrainConfig.from_dict(settings), True
    return TrainConfig(**settings), False


def check_settings(settings: dict, source, legacy: bool = False) -> None:
    """Refuse, in one line naming the key and ``source``, a key that is not a setting (``legacy``:
    nor a key of an older run's record) or a value not of its setting's type."""
    hints = typing.get_type_hints(TrainConfig)
    known = {f.name: hints[f.name] for f in fields(TrainConfig)}
    if legacy:
        known.update(LEGACY_KEYS)
    for key, value in settings.items():
        if key not in known:
            near = get_close_matches(str(key), list(known), n=1)
            raise ConfigError(f"{source}: unknown setting {key!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                              + "; the settings are the keys of a run's config.json settings, see docs/flags.md")
        expected = _fits(value, known[key])
        if expected is not None:
            raise ConfigError(f"{source}: setting {key!r} must be {expected}, got {brief(value)} ({_kind(value)})")


def _fits(value, hint) -> Optional[str]:
    """None when ``value`` (parsed JSON/YAML) is of the type ``hint``, else what it should be."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        if value is None:
            return None
        return _fits(value, inner[0]) and f"{_fits(value, inner[0])} or null"
    if hint is Any:  # the likelihood: a built-in name, or the config() object of one
        return None if isinstance(value, (str, dict)) else "a likelihood name or object"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if hint is dict or origin is dict:
        return None if isinstance(value, dict) else "an object"
    if origin is tuple:  # Tuple[int, ...]
        ok = isinstance(value, (list, tuple)) and all(_fits(v, args[0]) is None for v in value)
        return None if ok else "a list of whole numbers"
    return None


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a whole number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _parse_json(text: str, path: Path):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") \
            from None


def _parse_yaml(text: str, path: Path):
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"reading {path} needs PyYAML: pip install pyyaml (or give the settings as .json)") from None

    class Loader(yaml.SafeLoader):
        """The safe loader, reading numbers as YAML 1.2 writes them (``1e-3``)."""

    Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT, list("-+0123456789."))
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML: {getattr(error, 'problem', None) or one_line(error)}{where}") \
            from None
