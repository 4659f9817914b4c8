"""The values an update brings to the twin: which it refuses, and why, value by value
(so that a stream's replay can apply the rest of an arrival); and a forecast's planned
inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from .._core.model import HybridModel
from .checks import _finite, _known

__all__ = ["planned", "refusals"]


def refusals(
    model: HybridModel,
    measurement_sd: Mapping[str, float],
    values: Mapping[str, float],
    sd: Mapping[str, float] = {},
) -> dict[str, str]:
    """The values (and sds) of an update that a twin of `model` refuses, each name with
    why: an unknown name; a value that is not a finite number; a measured variable
    outside its physical range (:attr:`HybridModel.ranges`: a concentration below 0,
    say); a negative event amount; an sd that is not a positive finite number or that
    belongs to no value; a measured variable without an sd (in `sd`, the twin's
    `measurement_sd`, or the observation's declaration). Empty if none."""
    known = (*model.variable_names, *model.input_names, *model.event_names)
    ranges = model.ranges
    out = {}
    for name, value in values.items():
        x = _number(value)
        lo, hi = ranges.get(name, (-math.inf, math.inf))
        if name not in known:
            out[name] = f"unknown name(s) [{name!r}]; known: {', '.join(known)}"
        elif not math.isfinite(x):
            out[name] = f"{name} = {value!r} is not a finite number"
        elif not lo <= x <= hi:
            out[name] = f"{name} = {x:g} is outside its physical range [{lo:g}, {hi:g}]"
        elif name in model.event_names and x < 0:
            out[name] = f"{name} = {x:g}: an event's amount cannot be negative"
        elif name in sd and not (math.isfinite(_number(sd[name])) and _number(sd[name]) > 0):
            out[name] = f"sd: {name} = {sd[name]!r} is not a positive finite number"
        elif name in model.variable_names and name not in sd and name not in measurement_sd:
            out[name] = (
                f"no measurement sd for [{name!r}]: give measurement_sd= to the twin, sd= to "
                "update, or sd in the observation's declaration"
            )
    for name in sd:
        if name not in values:
            out[name] = f"sd: {name!r} has no value in this update"
    return out


def _number(x) -> float:
    """`x` as a float; NaN if it is not a number."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def planned(
    model: HybridModel, plan: pd.DataFrame | Mapping[str, float] | None, now: float, until: float
) -> pd.DataFrame:
    """A forecast's planned inputs as a long table ``time, variable, value`` between
    `now` and `until` (a mapping: values held from `now`; None: none planned).

    Raises:
        TwinError: an unknown input name or a value that is not finite."""
    if isinstance(plan, Mapping):
        plan = pd.DataFrame(
            [(now, k, v) for k, v in plan.items()], columns=["time", "variable", "value"]
        )
    if plan is None:
        plan = pd.DataFrame({"time": [], "variable": [], "value": []})
    if len(plan):
        inputs = (*model.input_names, *model.event_names)
        _known("planned_inputs", dict.fromkeys(plan["variable"]), inputs)
        _finite("planned_inputs", dict(enumerate(plan["value"].astype(float))))
    return plan[(plan["time"] >= now) & (plan["time"] <= until)]
