"""Model files: the TOML form of a :class:`HybridModel` (see DESIGN.md §3).

Tables: ``[model]`` (name, time_unit), ``[states]``, ``[inputs]``, ``[constants]``
(per-batch columns of batches.csv), ``[parameters]``, ``[networks.NAME]``,
``[reactor]``, ``[rates]``, ``[balances]``. Expressions are parsed against a
whitelist (:mod:`hybridxfer.expressions`). Every error names the file and line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import jax

from .expressions import ExpressionError
from .model import Constant, HybridModel, Input, ModelError, State
from .networks import Network
from .parameters import Parameter, ParameterError
from .reactor import Reactor, ReactorError

__all__ = ["ModelFileError", "load_model", "parse_model"]


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
}
_FIELDS = {
    "model": {"name", "time_unit", "description"},
    "states": {"unit", "initial", "guess"},
    "inputs": {"unit", "interpolation"},
    "constants": {"unit"},
    "parameters": {"value", "unit", "bounds", "fixed", "positive", "process_specific"},
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


def load_model(path: str | os.PathLike, *, key: jax.Array | None = None) -> HybridModel:
    """Read a model file. `key` initialises network weights (default: PRNGKey(0))."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read model file ({e.strerror})") from None
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

    reactor_spec = dict(doc.get("reactor", {}))
    unknown = set(reactor_spec) - _FIELDS["reactor"]
    if unknown:
        fail("reactor", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_FIELDS['reactor'])}")
    volume = reactor_spec.pop("volume", "V")
    if isinstance(volume, dict):
        reactor_spec["volume_initial"] = volume.get("initial")
        volume = volume.get("name", "V")
    bolus = dict(reactor_spec.pop("bolus", {}))
    reactor_spec["bolus_volume"] = bolus.pop("volume", None)
    try:
        reactor = Reactor(volume=volume, bolus=bolus, **reactor_spec)
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
            reactor=reactor,
            rates={k: str(v) for k, v in doc["rates"].items()},
            balances={k: str(v) for k, v in doc["balances"].items()},
            key=jax.random.PRNGKey(0) if key is None else key,
        )
    except (ModelError, ExpressionError, ParameterError) as e:
        where = getattr(e, "where", "") or "model"
        message = str(e).removeprefix(f"{where}: ")
        fail(where, message)


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
