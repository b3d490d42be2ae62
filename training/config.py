"""Hyperparameters in dataclasses, turned into command-line flags with help on every flag.

A task declares its configuration as a dataclass whose fields use :func:`option`::

    @dataclasses.dataclass
    class LungConfig:
        lr: float = option(1e-4, "Adam learning rate (Seo et al. 2021, Sec. III-A)")

:func:`add_arguments` adds ``--lr`` to an argparse parser and :func:`from_args` builds the
dataclass back from the parsed namespace, so defaults, help and the JSON written into the run
directory come from one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from core.options import option  # noqa: F401  (re-exported: task configs declare fields with it)


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of dataclass ``cls`` (``snake_case`` -> ``--snake-case``)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for field in dataclasses.fields(cls):
        if field.name in skip or "help" not in field.metadata:
            continue
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()
        )
        kwargs = {
            "dest": field.name,
            "default": argparse.SUPPRESS,
            "help": f"{field.metadata['help']} (default: {default})",
        }
        hint = hints[field.name]
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _parser_for(hint, field.name)
            if field.metadata.get("choices"):
                kwargs["choices"] = field.metadata["choices"]
        group.add_argument(_flag(field), **kwargs)


def _parser_for(hint, name):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (list, tuple) or hint in (list, tuple):
        item = args[0] if args else str

        def parse_list(text):
            try:
                return [item(v) for v in text.split(",") if v.strip()]
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"--{name.replace('_', '-')}: expected a comma-separated list of {item.__name__}; got {text!r}"
                ) from None

        return parse_list
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] or X | None
        inner = [a for a in args if a is not type(None)][0]
        base = _parser_for(inner, name)
        return lambda text: None if text.lower() in ("none", "") else base(text)
    return hint


def from_args(cls, args: argparse.Namespace, **overrides):
    """Build dataclass ``cls`` from parsed flags; flags not given keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update({k: v for k, v in overrides.items() if k in names})
    return cls(**values)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
