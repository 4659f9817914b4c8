"""A fit's settings (:class:`~hybridxfer.FitConfig`, any dataclass) as JSON-ready
values and back, for saved models' ``meta.json``: a Solver by its named settings
(:mod:`.names`), nested dataclasses as objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .._solve import Solver
from .names import solver_from_dict, solver_to_dict

__all__ = ["settings_from_dict", "settings_to_dict"]


def settings_to_dict(config) -> dict:
    """A dataclass as JSON-ready settings, the inverse of :func:`settings_from_dict`: a
    :class:`~hybridxfer.Solver` as its named settings (:func:`solver_to_dict`), nested
    dataclasses as objects."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, Solver):
            v = solver_to_dict(v)
        elif dataclasses.is_dataclass(v):
            v = settings_to_dict(v)
        out[f.name] = v
    return out


def settings_from_dict(cls, d: Mapping):
    """A dataclass from :func:`settings_to_dict` output read back from JSON: a Solver from its
    named settings, nested dataclasses rebuilt, lists made tuples, unknown keys ignored."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{cls.__name__} must be a JSON object, not {type(d).__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, Solver):
            v = solver_from_dict(v)
        elif dataclasses.is_dataclass(default):
            v = settings_from_dict(type(default), v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)
