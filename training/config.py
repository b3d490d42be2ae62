"""Hyperparameters in dataclasses, turned into command-line flags with help on every flag.

A task declares its configuration as a dataclass whose fields use
:func:`core.options.option`::

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
    """Build dataclass ``cls`` from parsed flags; flags not given keep their defaults.

    The fields given on the command line are remembered (:func:`given_fields`), so that
    ``--resume`` can tell a flag the user changed from a default (:func:`resumed_config`).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update({k: v for k, v in overrides.items() if k in names})
    return mark_given(cls(**values), values)


# Settings that ``--resume`` may change: the number of epochs (to add epochs), and where the
# data lies (the split in split.json is reused, so the same cases are read from the new
# place). Any other setting differing from the saved run is an error naming its flag: a
# resumed run continues the saved one exactly, or it is a new run (another --out).
RESUME_MAY_CHANGE = ("epochs", "data_dir")
_GIVEN = "_given_fields"


def mark_given(config, names) -> object:
    """Record that the fields ``names`` of ``config`` were given on the command line."""
    object.__setattr__(config, _GIVEN, frozenset(names))
    return config


def given_fields(config) -> frozenset | None:
    """The fields given on the command line, or None if unknown (every field counts)."""
    return getattr(config, _GIVEN, None)


def resumed_config(config, saved: dict, where, may_change=RESUME_MAY_CHANGE):
    """The configuration a resumed run continues with: the saved one, with the settings in
    ``may_change`` as given now. A setting given now (see :func:`mark_given`; all of them
    for a config built in code) that differs from the saved run raises a ``UserError``
    naming every such flag, what was saved and what was given."""
    import json

    from core.errors import UserError

    given = given_fields(config)
    values, changed = {}, []
    for field in dataclasses.fields(config):
        new = getattr(config, field.name)
        if field.name not in saved:
            values[field.name] = new
            continue
        old = saved[field.name]
        same = json.loads(json.dumps(new, default=str)) == old
        if same or field.name in may_change:
            values[field.name] = new
            if not same:
                print(f"--resume: {_flag(field)} changes from {old} to {new}", flush=True)
        elif given is None or field.name in given:
            changed.append(f"{_flag(field)} {new} (the run has {old})")
        else:
            values[field.name] = old
    if changed:
        raise UserError(
            f"--resume continues {where} with its own settings; these flags differ from it: "
            f"{'; '.join(changed)}. Drop them, or start a new run (another --out, or "
            f"--overwrite). Flags that may change on --resume: "
            f"{', '.join('--' + n.replace('_', '-') for n in may_change)}"
        )
    resumed = type(config)(**values)
    return mark_given(resumed, given or ())


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
