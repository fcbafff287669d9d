"""One option, one place: every training option is a config field (type, default, bounds,
description), and the command-line flags, their ``--help`` text and the ``TextClassifier(**kw)``
keywords are derived from those fields here, as Hugging Face's ``HfArgumentParser`` derives flags
from dataclasses. A new config field needs no change to the CLI or the API.

A field's command-line spelling can be tuned with ``json_schema_extra={"cli": {...}}``:
``flag`` (the long flag without dashes; default: the field name with dashes), ``keyword`` (the API
keyword; default: the field name), ``also`` (extra flags that store a constant, e.g.
``{"freeze-vectors": False}``), ``append`` (an extra flag that appends one value per use) or
``False`` to keep a field off the command line. Any field, exposed or not, is reachable with a
dotted override: ``--set train.lr=1e-3`` on the command line, ``TextClassifier(**{"train.lr":
1e-3})`` in Python.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel

from textcls.config import (
    BackboneConfig,
    ClassifierConfig,
    DataConfig,
    DecisionConfig,
    EmbeddingConfig,
    EncoderConfig,
    ModelConfig,
    TokenizerConfig,
    TrainConfig,
)
from textcls.errors import ConfigError

# (path in the config, its model, the --help section title)
SECTIONS: tuple[tuple[tuple[str, ...], type[BaseModel], str], ...] = (
    (("data",), DataConfig, "data"),
    (("model", "tokenizer"), TokenizerConfig, "tokenizer"),
    (("model", "embedding"), EmbeddingConfig, "word vectors (word models)"),
    (("model", "encoder"), EncoderConfig, "encoder"),
    (("model",), ModelConfig, "model"),
    (("model", "decision"), DecisionConfig, "decisions: calibration, multi-label thresholds, out of scope"),
    (("model", "backbone"), BackboneConfig, "transformers (--model minilm-l6 or a Hugging Face directory)"),
    (("train",), TrainConfig, "training"),
)


@dataclass(frozen=True)
class Option:
    """One config field as an option: where it lives, how it is spelled, how it is parsed."""

    path: tuple[str, ...]  # ("train", "lr")
    keyword: str  # TextClassifier(lr=...)
    flag: str  # "--lr"
    annotation: Any
    default: Any
    description: str
    section: str
    also: dict[str, Any] = field(default_factory=dict)  # "--freeze-vectors": False
    append: str | None = None  # "--text-column": one value per use

    @property
    def dest(self) -> str:
        return "opt__" + "__".join(self.path)


@cache
def options() -> tuple[Option, ...]:
    """Every exposed config field, in section order; keywords and flags are checked unique."""
    found: list[Option] = []
    for prefix, model, section in SECTIONS:
        for name, info in model.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                continue  # a nested section, listed on its own
            if _is_model(info.annotation):
                continue
            extra = (info.json_schema_extra or {}) if isinstance(info.json_schema_extra, dict) else {}
            spec = extra.get("cli", {})
            if spec is False:
                continue
            found.append(
                Option(
                    path=(*prefix, name),
                    keyword=spec.get("keyword", name),
                    flag="--" + spec.get("flag", name.replace("_", "-")),
                    annotation=info.annotation,
                    default=None if info.default_factory else info.default,
                    description=info.description or "",
                    section=section,
                    also={"--" + k: v for k, v in spec.get("also", {}).items()},
                    append="--" + spec["append"] if "append" in spec else None,
                )
            )
    for attribute in ("keyword", "flag"):
        seen: dict[str, Option] = {}
        for option in found:
            value = getattr(option, attribute)
            if value in seen:
                raise ConfigError(
                    f"two options share the {attribute} {value}: {option.path}, {seen[value].path}"
                )
            seen[value] = option
    return tuple(found)


def _is_model(annotation: Any) -> bool:
    return any(isinstance(a, type) and issubclass(a, BaseModel) for a in typing.get_args(annotation))


def keyword_paths() -> dict[str, tuple[str, ...]]:
    """API keyword → path in the config (``{"lr": ("train", "lr"), ...}``)."""
    return {option.keyword: option.path for option in options()}


# ----------------------------------------------------------------------------- parsing values


def _parts(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return annotation, False


def _choices(annotation: Any) -> list[Any] | None:
    inner, _ = _parts(annotation)
    return list(typing.get_args(inner)) if typing.get_origin(inner) is Literal else None


def _converter(annotation: Any) -> Any:
    """The argparse ``type`` for a field's annotation."""
    inner, _ = _parts(annotation)
    origin = typing.get_origin(inner)
    if origin in (typing.Union, types.UnionType):  # e.g. list[int] | Literal["auto"]: a word, or a list
        members = typing.get_args(inner)
        words = [v for a in members if typing.get_origin(a) is Literal for v in typing.get_args(a)]
        others = [a for a in members if typing.get_origin(a) is not Literal]
        if words and len(others) == 1:
            convert = _converter(others[0])

            def word_or(value: str) -> Any:
                return value if value in words else convert(value)

            word_or.__name__ = f"{' or '.join(map(str, words))} or {convert.__name__}"
            return word_or
    if origin is list:
        (item,) = typing.get_args(inner) or (str,)
        return _comma_list(item)
    if origin is dict or inner is dict:
        return _json_object
    if origin is Literal:
        return type(typing.get_args(inner)[0])
    if inner in (int, float, str):
        return inner
    return str


def _comma_list(item: type) -> Any:
    def parse(value: str) -> list[Any]:
        try:
            return [item(part.strip()) for part in value.split(",") if part.strip()]
        except ValueError:
            kind = "integers" if item is int else "values"
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind}, got '{value}'") from None

    parse.__name__ = f"list of {item.__name__}"
    return parse


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got '{value}': {error}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got '{value}'")
    return parsed


def _is_bool(annotation: Any) -> bool:
    return _parts(annotation)[0] is bool


# ----------------------------------------------------------------------------- argparse


def _help(option: Option, preset_defaults: dict[str, Any]) -> str:
    text = option.description
    default = option.default
    if "default" in text:  # the description says it better
        return text.replace("%", "%%").strip()
    if default is not None and default != [] and not _is_bool(option.annotation):
        text += f" (default {default}"
        if option.path[0] == "train" and option.path[-1] in preset_defaults:
            text += f"; transformer presets: {preset_defaults[option.path[-1]]}"
        text += ")"
    elif _is_bool(option.annotation) and default is not None:
        text += f" (default {'on' if default else 'off'})"
    return text.replace("%", "%%").strip()


def add_arguments(
    parser: argparse.ArgumentParser,
    sections: typing.Iterable[str] | None = None,
    *,
    only: typing.Iterable[str] | None = None,
    skip: typing.Iterable[str] = (),
) -> None:
    """Add the flags of every option (or of the sections with these config paths, e.g. ``"data"``,
    ``"train"``; or ``only`` these keywords) to ``parser``, grouped by section. Defaults are None,
    so only what a user gives overrides the config."""
    from textcls.registry import TRANSFORMER_TRAIN_DEFAULTS

    wanted = set(sections) if sections is not None else None
    only_set, skip_set = (set(only) if only is not None else None), set(skip)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in options():
        if wanted is not None and ".".join(option.path[:-1]) not in wanted and option.path[0] not in wanted:
            continue
        if (only_set is not None and option.keyword not in only_set) or option.keyword in skip_set:
            continue
        group = groups.get(option.section) or parser.add_argument_group(option.section)
        groups[option.section] = group
        help_text = _help(option, TRANSFORMER_TRAIN_DEFAULTS)
        if _is_bool(option.annotation):
            group.add_argument(
                option.flag,
                dest=option.dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                option.flag,
                dest=option.dest,
                type=_converter(option.annotation),
                choices=_choices(option.annotation),
                default=None,
                metavar=None if _choices(option.annotation) else option.path[-1].upper(),
                help=help_text,
            )
        for flag, value in option.also.items():
            same = f"--no-{option.flag[2:]}" if value is False else f"{option.flag} {value}"
            group.add_argument(
                flag, dest=option.dest, action="store_const", const=value, help=f"same as {same}"
            )
        if option.append:
            (item,) = typing.get_args(_parts(option.annotation)[0]) or (str,)
            group.add_argument(
                option.append,
                dest=option.dest,
                action="append",
                type=item,
                metavar=option.path[-1].upper().removesuffix("S"),
                help=f"one value of {option.flag}; repeat for several",
            )
    if wanted is None or "set" in wanted:
        parser.add_argument(
            "--set",
            dest="opt__set",
            action="append",
            default=None,
            metavar="PATH=VALUE",
            help="set any config field by its dotted path, e.g. --set train.lr=1e-3 "
            "--set model.encoder.params.num_filters=64 (VALUE is read as YAML); repeatable",
        )


def from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options a user gave on the command line, as API keywords (dotted paths for --set)."""
    values: dict[str, Any] = {}
    for option in options():
        value = getattr(args, option.dest, None)
        if value is not None:
            values[option.keyword] = value
    for item in getattr(args, "opt__set", None) or []:
        path, value = parse_set(item)
        values[path] = value
    return values


def parse_set(item: str) -> tuple[str, Any]:
    """``"train.lr=1e-3"`` → ``("train.lr", 0.001)``; the value is read as YAML (lists, null, ...)."""
    import yaml

    path, sep, raw = item.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set expects PATH=VALUE (e.g. train.lr=1e-3), got '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {item}: the value is not valid YAML: {error}") from None
    return path.strip(), value


# ----------------------------------------------------------------------------- applying


def check_path(path: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``path`` names a field of the configuration (free-form mappings
    such as ``model.encoder.params`` accept any key below them)."""
    model: Any = ClassifierConfig
    for depth, name in enumerate(path):
        fields = model.model_fields
        if name not in fields:
            known = ", ".join(sorted(fields))
            where = ".".join(path[:depth]) or "the config"
            raise ConfigError(f"unknown config field '{'.'.join(path)}': {where} has {known}")
        annotation, _ = _parts(fields[name].annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        if depth < len(path) - 1 and not (annotation is dict or typing.get_origin(annotation) is dict):
            raise ConfigError(f"'{'.'.join(path)}': {'.'.join(path[: depth + 1])} is a value, not a section")
        return


def as_update(key: str, value: Any) -> dict[str, Any]:
    """An API keyword or a dotted path with its value, as a nested dict for ``deep_update``."""
    paths = keyword_paths()
    if key in paths:
        path = paths[key]
    elif "." in key:
        path = tuple(key.split("."))
        check_path(path)
    else:
        raise ConfigError(
            f"unknown option '{key}'; known: {', '.join(sorted(paths))} (or a dotted path such as train.lr)"
        )
    update: dict[str, Any] = {path[-1]: value}
    for parent in reversed(path[:-1]):
        update = {parent: update}
    return update


# ----------------------------------------------------------------------------- other commands


def add_model_fields(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    section: str,
    *,
    prefix: str = "",
    skip: typing.Iterable[str] = (),
    rename: dict[str, str | None] | None = None,
) -> None:
    """Flags for the plain fields of a settings model other than the training config (``textcls
    pretrain``): ``--name`` each (``rename`` maps a field to another flag, or None to leave it
    out), their values read back by :func:`model_field_values` as dotted paths under ``prefix``."""
    group = parser.add_argument_group(section)
    rename = rename or {}
    for name, info in model.model_fields.items():
        if name in set(skip) or _is_model(info.annotation) or rename.get(name, "") is None:
            continue
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            continue
        flag = "--" + (rename.get(name) or name.replace("_", "-"))
        dest = "field__" + (prefix + name).replace(".", "__")
        default = None if info.default_factory else info.default
        shown = f" (default {default})" if default not in (None, [], False) else ""
        help_text = ((info.description or "") + shown).strip().replace("%", "%%")
        if _is_bool(info.annotation):
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            group.add_argument(
                flag,
                dest=dest,
                type=_converter(info.annotation),
                choices=_choices(info.annotation),
                default=None,
                metavar=None if _choices(info.annotation) else name.upper(),
                help=help_text,
            )


def model_field_values(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of :func:`add_model_fields` a user gave, as dotted paths (``bilm.layers``)."""
    return {
        key.removeprefix("field__").replace("__", "."): value
        for key, value in vars(args).items()
        if key.startswith("field__") and value is not None
    }
