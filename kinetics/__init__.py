"""Mechanistic rate laws for bioreactor models: pure, JAX-traceable, elementwise functions.

Each function returns either a dimensionless factor (mostly in [0, 1]) or a specific rate,
meant to be multiplied together in rate expressions, e.g.
`mu_max * monod(Glc, K_glc) * noncompetitive_inhibition(Lac, K_lac)`. All work under
`jax.jit`, `jax.vmap` and `jax.grad`, broadcast over arrays, clip concentrations at zero,
and have finite gradients also outside their valid range.
"""

from collections.abc import Callable

from .environment import GAS_CONSTANT, arrhenius, cardinal_ph, cardinal_temperature
from .inhibition import (
    competitive_inhibition,
    levenspiel,
    noncompetitive_inhibition,
    product_inhibition,
)
from .production import luedeking_piret, pirt
from .substrate import andrews, contois, haldane, monod, moser, tessier

RATE_LAWS: dict[str, Callable] = {
    "monod": monod,
    "contois": contois,
    "haldane": haldane,
    "andrews": andrews,
    "moser": moser,
    "tessier": tessier,
    "noncompetitive_inhibition": noncompetitive_inhibition,
    "competitive_inhibition": competitive_inhibition,
    "product_inhibition": product_inhibition,
    "levenspiel": levenspiel,
    "luedeking_piret": luedeking_piret,
    "pirt": pirt,
    "cardinal_temperature": cardinal_temperature,
    "cardinal_ph": cardinal_ph,
    "arrhenius": arrhenius,
}
"""Name → function for every public rate law (aliases included); the whitelist of callables
for the model-file expression parser. Every entry takes positional array arguments only."""

__all__ = [
    "GAS_CONSTANT",
    "RATE_LAWS",
    "andrews",
    "arrhenius",
    "cardinal_ph",
    "cardinal_temperature",
    "competitive_inhibition",
    "contois",
    "haldane",
    "levenspiel",
    "luedeking_piret",
    "monod",
    "moser",
    "noncompetitive_inhibition",
    "pirt",
    "product_inhibition",
    "tessier",
]
