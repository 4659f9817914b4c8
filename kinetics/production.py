"""Growth-linked specific production and consumption rates."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def luedeking_piret(
    mu: Float[ArrayLike, "..."], alpha: Float[ArrayLike, "..."], beta: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Luedeking–Piret specific product formation rate.

        q_P = luedeking_piret(mu, alpha, beta) = alpha·mu + beta

    **Arguments:**

    - `mu`: specific growth rate [1/h].
    - `alpha`: growth-associated product yield [product per biomass, e.g. g/g].
    - `beta`: non-growth-associated specific production rate [product per biomass per
        hour, e.g. g/(g·h)].

    **Returns:**

    Specific production rate `q_P` [product per biomass per hour, e.g. g/(g·h)].

    **Reference:** Luedeking and Piret (1959).
    """
    return alpha * jnp.asarray(mu) + beta


def pirt(
    mu: Float[ArrayLike, "..."], Y_max: Float[ArrayLike, "..."], m: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Pirt specific substrate uptake rate with maintenance.

        q_S = pirt(mu, Y_max, m) = mu/Y_max + m

    **Arguments:**

    - `mu`: specific growth rate [1/h].
    - `Y_max`: true (maximum) biomass yield on substrate [biomass per substrate, e.g. g/g],
        `Y_max > 0`.
    - `m`: maintenance coefficient [substrate per biomass per hour, e.g. g/(g·h)].

    **Returns:**

    Specific substrate uptake rate `q_S` [substrate per biomass per hour, e.g. g/(g·h)].

    **Reference:** Pirt (1965).
    """
    return jnp.asarray(mu) / Y_max + m
