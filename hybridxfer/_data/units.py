"""Units of study data: a unit in a column header (``F [mL/h]``), and conversion of
values to the model's declared units with :mod:`pint`.

Unit strings come from data files, so they are checked before pint reads them: at
most 64 characters of letters, digits, spaces and ``. / * ( ) % ^ + - _``, and no
exponent of an exponent (pint would evaluate ``kg**9**9**9``). pint is imported, and
its registry built, only when a declared unit differs from the wanted one.
"""

from __future__ import annotations

import functools
import re
import tokenize

import numpy as np

__all__ = ["UnitError", "convert", "split_header"]

_HEADER = re.compile(r"^(?P<name>[^\[\]]*?)\s*\[(?P<unit>[^\[\]]*)\]$")
_SAFE = re.compile(r"^[A-Za-z0-9_ ./*()%^+-]{1,64}$")
_TOWER = re.compile(r"(\*\*|\^)\s*[-+]?\s*[\d.]+\s*(\*\*|\^)")


class UnitError(ValueError):
    """A unit that cannot be read, or converted to the wanted one."""


def split_header(header: str) -> tuple[str, str | None]:
    """A column header's name and unit: ``"F [mL/h]"`` -> ``("F", "mL/h")``,
    ``"F"`` -> ``("F", None)``."""
    match = _HEADER.match(header.strip())
    if match is None:
        return header.strip(), None
    return match["name"].strip(), match["unit"].strip()


def convert(values: np.ndarray, source: str, target: str) -> np.ndarray:
    """`values` given in unit `source`, in unit `target`.

    Equal strings convert without pint. Units are read by pint with ``h`` the hour
    (not Planck's constant), ``cell``/``cells`` a count, and numeric factors allowed
    (``1e9 cells/L``); offset units (``degC``) convert with their offset.

    Raises:
        UnitError: a unit pint does not know or that is unsafe to read (naming it),
            or units of different dimensions (naming both).
    """
    if source == target:
        return values
    a, b = _quantity(source), _quantity(target)
    import pint

    try:
        out = _values(a, b, values)
    except pint.errors.DimensionalityError:
        raise UnitError(
            f"unit {source!r} cannot be converted to {target!r} (a {_dims(a)} is not a {_dims(b)})"
        ) from None
    if not np.all(np.isfinite(out[np.isfinite(values)])):
        raise UnitError(f"converting from {source!r} to {target!r} gives non-finite values")
    return out


def _values(a, b, values: np.ndarray) -> np.ndarray:
    """Magnitudes in quantity `b`'s unit of `values` in quantity `a`'s unit."""
    ureg = _registry()
    q = ureg.Quantity(np.asarray(values, dtype=float) * a.magnitude, a.units)
    return np.asarray(q.to(b.units).magnitude, dtype=float) / b.magnitude


def _dims(q) -> str:
    return "dimensionless quantity" if q.dimensionless else f"quantity of {q.dimensionality}"


def _quantity(unit: str):
    """The pint quantity of a unit string (e.g. 1e9 cell / liter)."""
    import pint

    if not _SAFE.match(unit) or _TOWER.search(unit):
        raise UnitError(
            f"unit {unit!r} is not a unit pint can read safely (at most 64 letters, digits, "
            "spaces and . / * ( ) % ^ + - _, no exponent of an exponent)"
        )
    try:
        q = _registry().parse_expression(unit)
    except (pint.errors.PintError, tokenize.TokenError, AttributeError, TypeError) as e:
        raise UnitError(f"unit {unit!r} is not a known unit ({e})") from None
    if not isinstance(q, _registry().Quantity) or not np.isfinite(q.magnitude) or q.magnitude == 0:
        raise UnitError(f"unit {unit!r} is not a unit (it reads as the number {q!r})")
    return q


@functools.cache
def _registry():
    import pint

    ureg = pint.UnitRegistry(on_redefinition="ignore")
    ureg.define("hour = 60 * minute = h = hr")  # pint's "h" is Planck's constant
    ureg.define("cell = [cell_count] = cells")
    return ureg
