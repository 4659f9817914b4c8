"""Model files: the TOML form of a :class:`HybridModel` (see DESIGN.md §3).

Tables: ``[model]`` (name, time_unit), ``[states]``, ``[inputs]``, ``[constants]``
(per-batch columns of batches.csv), ``[parameters]``, ``[networks.NAME]``,
``[reactor]``, ``[rates]``, ``[balances]``, ``[observations]`` (observation
equations of measured signals, e.g. ``OUR = { unit = "mmol/(L h)", expression =
"(a_O2 * mu + b_O2) * Xv", sd = 0.02 }``). Expressions are parsed against a
whitelist (:mod:`hybridxfer.expressions`). Every error names the file and line.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._core.expressions import ExpressionError
from .._core.model import Constant, HybridModel, Input, ModelError, Observation, State
from .._core.networks import Network
from .._core.parameters import Parameter, ParameterError
from .._core.reactor import (
    AbstractFlowReactor,
    AbstractReactor,
    Batch,
    Chemostat,
    FedBatch,
    Perfusion,
    ReactorError,
)

__all__ = ["ModelFileError", "load_model", "parse_model", "to_toml"]


class ModelFileError(ValueError):
    """A model file that cannot be read; the message names the file and line."""


_TABLES = {
    "model": None,
    "states": None,
    "inputs": None,
    "constants": None,
    "parameters": None,
    "networks": None,
    "reactor": None,
    "rates": None,
    "balances": None,
    "observations": None,
}
_FIELDS = {
    "model": {"name", "time_unit", "description"},
    "states": {"unit", "initial", "guess", "range"},
    "inputs": {"unit", "interpolation"},
    "constants": {"unit"},
    "observations": {"unit", "expression", "sd", "range"},
    "parameters": {
        "value",
        "unit",
        "bounds",
        "fixed",
        "positive",
        "process_specific",
        "batch_sd",
    },
    "networks": {"inputs", "hidden", "output", "scale", "activation"},
    "reactor": {
        "mode",
        "volume",
        "feed_rate",
        "feed",
        "bleed_rate",
        "retained",
        "bolus",
        "withdrawal",
    },
}


# reactor modes by their model-file name (``mode = "fed-batch"``)
REACTORS: dict[str, type[AbstractReactor]] = {
    "batch": Batch,
    "fed-batch": FedBatch,
    "chemostat": Chemostat,
    "perfusion": Perfusion,
}


def load_model(path: str | os.PathLike, *, key: jax.Array | None = None) -> HybridModel:
    """Read a model file. `key` initialises network weights (default: PRNGKey(0))."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read model file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ModelFileError(
            f"{path}: not UTF-8 text (byte {e.start}): a model file is TOML text"
        ) from None
    return parse_model(text, source=str(path), key=key)


def parse_model(text: str, *, source: str = "<model>", key: jax.Array | None = None) -> HybridModel:
    """Build a model from TOML text; `source` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ModelFileError(f"{source}: TOML syntax error: {e}") from None

    def fail(where: str, message: str):
        raise ModelFileError(
            f"{source}, line {_line_of(text, where)}: [{where}] {message}"
        ) from None

    for table, body in doc.items():
        if table not in _TABLES:
            fail(table, f"unknown table; expected one of {', '.join(_TABLES)}")
        if not isinstance(body, dict):
            fail(table, "must be a table")
    for table in ("states", "rates", "balances"):
        if table not in doc:
            raise ModelFileError(f"{source}: missing table [{table}]")

    def entries(table: str) -> dict[str, dict[str, Any]]:
        out = {}
        for name, spec in doc.get(table, {}).items():
            where = f"{table}.{name}"
            if not isinstance(spec, dict):
                fail(where, 'must be a table, e.g. { unit = "mM" }')
            unknown = set(spec) - _FIELDS[table]
            if unknown:
                fail(where, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELDS[table])}")
            if table != "networks" and "unit" not in spec:
                fail(where, 'has no unit; give one, e.g. unit = "1/h" ("1" if dimensionless)')
            out[name] = spec
        return out

    def build(where: str, cls, name: str, spec: dict):
        try:
            return cls(name, **spec)
        except ModelError as e:  # names the key
            fail(e.where, str(e).removeprefix(f"{e.where}: "))
        except (TypeError, ValueError) as e:
            fail(where, str(e))

    states = [build(f"states.{n}", State, n, s) for n, s in entries("states").items()]
    inputs = [build(f"inputs.{n}", Input, n, s) for n, s in entries("inputs").items()]
    constants = [build(f"constants.{n}", Constant, n, s) for n, s in entries("constants").items()]
    parameters = []
    for n, s in entries("parameters").items():
        if "bounds" in s:
            s = {**s, "bounds": tuple(s["bounds"])}
        parameters.append(build(f"parameters.{n}", Parameter, n, s))
    networks = [build(f"networks.{n}", Network, n, s) for n, s in entries("networks").items()]
    observations = []
    for n, s in entries("observations").items():
        if not isinstance(s.get("expression"), str | int | float):
            fail(f"observations.{n}", 'needs expression = "..." (the observation equation)')
        observations.append(build(f"observations.{n}", Observation, n, s))

    reactor_spec = dict(doc.get("reactor", {}))
    unknown = set(reactor_spec) - _FIELDS["reactor"]
    if unknown:
        fail("reactor", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELDS['reactor'])}")
    try:
        reactor = _reactor(reactor_spec)
    except (TypeError, ReactorError) as e:
        fail("reactor", str(e))

    for table in ("rates", "balances"):
        for name, expr in doc[table].items():
            if not isinstance(expr, str | int | float):
                fail(f"{table}.{name}", "must be an expression string")
    meta = doc.get("model", {})
    try:
        return HybridModel.build(
            name=meta.get("name", Path(source).stem),
            time_unit=meta.get("time_unit", "h"),
            states=states,
            inputs=inputs,
            constants=constants,
            parameters=parameters,
            networks=networks,
            observations=observations,
            reactor=reactor,
            rates={k: str(v) for k, v in doc["rates"].items()},
            balances={k: str(v) for k, v in doc["balances"].items()},
            key=jax.random.PRNGKey(0) if key is None else key,
        )
    except (ModelError, ExpressionError, ParameterError) as e:
        where = getattr(e, "where", "") or "model"
        message = str(e).removeprefix(f"{where}: ")
        fail(where, message)


def to_toml(model: HybridModel) -> str:
    """The model as model-file text, the inverse of :func:`parse_model`.

    ``parse_model(to_toml(m)).structure == m.structure`` except that each parameter's
    ``value`` is the model's current (e.g. fitted) value, ``m.parameter_values()``, so
    the file documents the fitted model (a parameter at its declared value keeps that
    value's exact digits). Keys at their default are left out; rates are
    written in evaluation order. Network weights are not part of a model file (see
    :mod:`hybridxfer.saved_model`).
    """
    s = model.structure
    values, free = model.parameter_values(), iter(np.asarray(model.free))

    def current(p) -> float:
        """The parameter's current value; its declared one, exactly, where the model
        is at it (constrain(unconstrain(v)) may differ from v in the last digit)."""
        if p.fixed:
            return float(values[p.name])
        return p.value if float(next(free)) == p.unconstrain(p.value) else float(values[p.name])

    lines = [
        "# Written by hybridxfer; parameter values are the model's current values.",
        "",
        "[model]",
        f"name = {_toml(s.name)}",
        f"time_unit = {_toml(s.time_unit)}",
    ]

    def table(header: str, entries: Mapping[str, Any]) -> None:
        lines.extend(["", f"[{header}]", *(f"{_key(k)} = {_toml(v)}" for k, v in entries.items())])

    table("states", {x.name: _declared(x, "unit") for x in s.states})
    if s.inputs:
        table("inputs", {x.name: _declared(x, "unit") for x in s.inputs})
    if s.constants:
        table("constants", {x.name: _declared(x, "unit") for x in s.constants})
    if s.parameters:
        table(
            "parameters",
            {  # "value" keeps its place (first), with the current value
                p.name: {**_declared(p, "unit"), "value": _inside(p, current(p))}
                for p in s.parameters
            },
        )
    for net in s.networks:
        table(f"networks.{_key(net.name)}", _declared(net, "inputs", "hidden", "output"))
    table("reactor", _reactor_table(s.reactor))
    table("rates", {name: expr.source for name, expr in s.rates})
    table("balances", {st.name: expr.source for st, expr in zip(s.states, s.balances)})
    if s.observations:
        table("observations", {o.name: _declared(o, "unit", "expression") for o in s.observations})
    return "\n".join(lines) + "\n"


def _declared(obj, *always: str) -> dict[str, Any]:
    """Fields of a declaration dataclass (name excluded): those in `always`, and those
    that differ from their default."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name != "name" and (f.name in always or v != default):
            out[f.name] = v
    return out


def _inside(p: Parameter, v: float) -> float:
    """`v`, moved by one ulp where a saturated transform put it on the edge of its domain
    (a bound, or 0 for a positive parameter), which the model file would refuse."""
    lo, hi = p.bounds if p.bounds is not None else (-np.inf, np.inf)
    lo = max(lo, 0.0) if p.positive else lo
    if not v > lo:
        v = float(np.nextafter(lo, np.inf))
    if not v < hi:
        v = float(np.nextafter(hi, -np.inf))
    return v


def _reactor(spec: dict[str, Any]) -> AbstractReactor:
    """The reactor of a ``[reactor]`` table, whose ``mode`` names the class.

    Raises:
        ReactorError: for an unknown mode, or keys that the mode lacks or refuses.
    """
    mode = spec.pop("mode", "batch")
    if mode not in REACTORS:
        raise ReactorError(f"reactor mode {mode!r} is not one of {', '.join(REACTORS)}")
    volume = spec.pop("volume", "V")
    if isinstance(volume, dict):
        spec["volume_initial"] = volume.get("initial")
        volume = volume.get("name", "V")
    bolus = dict(spec.pop("bolus", {}))
    spec.update(volume=volume, bolus_volume=bolus.pop("volume", None), bolus=bolus)
    flows = spec.get("feed_rate") is not None
    if mode == "batch" and (
        flows or spec.get("feed") or spec["bolus_volume"] or spec.get("withdrawal")
    ):
        raise ReactorError(
            'a batch reactor has no feed, bolus or withdrawal; use mode = "fed-batch"'
        )
    if mode != "batch" and not flows:
        raise ReactorError(f"a {mode} reactor needs feed_rate (an input or expression)")
    if (mode == "perfusion") != (spec.get("bleed_rate") is not None):
        raise ReactorError("bleed_rate is given for, and only for, a perfusion reactor")
    if spec.get("retained") and mode != "perfusion":
        raise ReactorError("retained states exist only in a perfusion reactor")
    cls = REACTORS[mode]
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in spec.items() if k in fields})


def _reactor_table(r: AbstractReactor) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": next(k for k, c in REACTORS.items() if type(r) is c)}
    if not isinstance(r, AbstractFlowReactor):
        return out
    if r.volume_initial is not None:
        out["volume"] = {"name": r.volume, "initial": r.volume_initial}
    else:
        out["volume"] = r.volume
    out["feed_rate"] = r.feed_rate
    if r.feed:
        out["feed"] = dict(r.feed)
    if isinstance(r, Perfusion):
        out["bleed_rate"] = r.bleed_rate
        if r.retained:
            out["retained"] = r.retained
    # bolus concentrations default to the feed's: write them only where given
    bolus = {} if r.bolus_volume is None else {"volume": r.bolus_volume}
    bolus.update(dict(r.bolus or ()))
    if bolus:
        out["bolus"] = bolus
    if r.withdrawal is not None:
        out["withdrawal"] = r.withdrawal
    return out


def _key(name: str) -> str:
    """A TOML key: bare where allowed, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml(name)


def _toml(v: Any) -> str:
    """A TOML value; floats as their shortest exact repr, strings as basic strings."""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return repr(float(v))
    if isinstance(v, str):  # JSON escapes are TOML escapes; TOML also refuses a bare DEL
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, Mapping):
        items = ", ".join(f"{_key(k)} = {_toml(x)}" for k, x in v.items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(v, Sequence):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) to a model file")


def _line_of(text: str, where: str) -> int:
    """Line (1-based) declaring the dotted location `where`, e.g. ``rates.mu``.

    Finds the longest prefix that is a table header, then the first key of the
    remaining path inside that table; falls back to the header's line, then to 1.
    """
    lines = text.splitlines()
    parts = where.split(".")
    for n in range(len(parts), 0, -1):
        header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, parts[:n])) + r"\s*\]")
        starts = [i for i, line in enumerate(lines) if header.match(line)]
        if not starts:
            continue
        start = starts[0]
        if n == len(parts):
            return start + 1
        key = re.compile(r"^\s*" + re.escape(parts[n]) + r"\s*[=.]")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if key.match(lines[i]):
                return i + 1
        return start + 1
    return 1
