"""Typed loading of dataclass configs from YAML files and `--set a.b=value` overrides.

One generic mechanism for every config dataclass in the project: each field's type hint
is the schema, each field's ``metadata["help"]`` is its documentation. Wrong keys and
wrong types become a one-line :class:`ConfigError` that names the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from signal_al.core.errors import ConfigError

T = TypeVar("T")


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping names the same key twice (PyYAML would silently keep the last one)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise DuplicateKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate mapping keys (raises :class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that carries its help text (TRL style: ``metadata={"help": ...}``)."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


#: The widest integer a config field holds (numpy, torch and file formats take 64-bit integers).
MAX_INT = 2**63 - 1


def check(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError naming ``key`` unless ``condition`` holds (for ``__post_init__`` checks)."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp``; return it converted where lossless."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:  # X | None: X's own error is the more precise one
            raise errors[0]
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INT:
                raise ConfigError(f"{where}: {value} is out of range (at most {MAX_INT} in size)")
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) <= 1e308 else math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 2e-5 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):  # every float field: nan and inf would pass range checks or overflow later
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            if "\x00" in value:
                raise ConfigError(f"{where}: must not contain a NUL character")
            return value
        hint = " (YAML reads 'a: b' as a mapping: quote the text, e.g. --set 'key=\"a: b\"')" if isinstance(
            value, dict) else ""
        raise ConfigError(f"{where}: expected a string, got {value!r}{hint}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _unknown_key_error(cls: type, key: str, where: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"
    return ConfigError(f"{where + '.' if where else ''}{key}: unknown key{hint}")


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build the dataclass ``cls`` from a nested mapping, checking every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise _unknown_key_error(cls, str(key), where)
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    try:
        obj = cls(**kwargs)
    except ConfigError as exc:
        if where and not str(exc).startswith(where):
            raise ConfigError(f"{where}.{exc}") from None
        raise
    return obj


def to_dict(obj: Any) -> Any:
    """Plain nested dict of a config dataclass (for saving next to a run)."""
    return dataclasses.asdict(obj)


def flat_dict(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{dotted key: leaf value}``.

    >>> flat_dict({"reward": {"k": 10}, "seed": 0})
    {'reward.k': 10, 'seed': 0}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flat_dict(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differing_keys(given: Any, saved: Any, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose value differs between two configs of one dataclass, in field order;
    ``ignore`` names keys or whole sections (``"experiment"`` covers ``experiment.seeds``)."""
    a, b = flat_dict(to_dict(given)), flat_dict(to_dict(saved))
    sections = tuple(f"{name}." for name in ignore)
    return [key for key in a if key not in ignore and not key.startswith(sections) and a[key] != b.get(key)]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into its dotted path and a YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, for example --set reward.k=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except DuplicateKeyError as exc:
        raise ConfigError(f"--set {text!r}: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_key(data: dict[str, Any], path: list[str], value: Any, *, where: str) -> None:
    """Set ``value`` at ``path`` in the nested mapping ``data`` (sections created as needed);
    ``where`` names the override in the error when a part of the path is not a section."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{part}' is not a section")
        node = child
    node[path[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the nested mapping ``data`` with each ``a.b=value`` applied."""
    import copy

    merged = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_key(merged, path, value, where=f"--set {text!r}")
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, a YAML syntax error or a file with no settings at all
    (empty, or only comments: most likely the wrong file, which would run on every default without a
    word) is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" if not path.exists() else f"{path}: not a file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{loc}: invalid YAML: {problem}") from None
    if data is None or data == {}:
        raise ConfigError(f"{path}: the config file holds no settings (it is empty or only comments); write "
                          "the keys to set, or leave the file out to run on the defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = (),
                pairs: Sequence[tuple[str, Any]] = (), *, section: str | None = None) -> T:
    """The one way a config is loaded: ``cls`` from an optional YAML file, then its ``--set a.b=value``
    ``overrides``, then structured ``(dotted key, value)`` ``pairs`` (command-line flags that mirror a key).

    ``section`` reads only that top-level mapping of the file (a run's ``reward`` section, say). Every
    key and type is checked; an error names the file and the dotted key.
    """
    data = read_yaml(path) if path is not None else {}
    if section is not None:
        data = data.get(section) or {}
    data = apply_overrides(data, list(overrides))
    for key, value in pairs:
        set_key(data, key.split("."), value, where=key)
    try:
        return from_dict(cls, data, where=section or "")
    except ConfigError as exc:
        if path is not None:
            raise ConfigError(f"{path}: {exc}") from None
        raise


def describe_fields(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, help) for every field, nested sections flattened."""
    rows: list[tuple[str, str, Any, str]] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_fields(tp, prefix=f"{key}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append((key, _type_name(tp), default, f.metadata.get("help", "")))
    return rows


__all__ = [
    "apply_overrides",
    "check",
    "describe_fields",
    "differing_keys",
    "field",
    "flat_dict",
    "from_dict",
    "load_config",
    "load_yaml",
    "parse_override",
    "read_yaml",
    "to_dict",
]
