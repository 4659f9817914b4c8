"""Inhibition factors (by an inhibitor, a competing species or the product)."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def noncompetitive_inhibition(
    I: Float[ArrayLike, "..."],  # noqa: E741
    K_i: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Non-competitive inhibition factor.

        noncompetitive_inhibition(I, K_i) = K_i / (K_i + I)

    **Arguments:**

    - `I`: inhibitor concentration [mM or g/L]. Clipped at zero, because an ODE solver can
        undershoot slightly below zero.
    - `K_i`: inhibition constant [same unit as `I`], `K_i > 0`.

    **Returns:**

    Dimensionless factor in (0, 1]: 1 at `I = 0`, 1/2 at `I = K_i`.
    """
    I = jnp.maximum(I, 0.0)  # noqa: E741
    return K_i / (K_i + I)


def competitive_inhibition(
    S: Float[ArrayLike, "..."],
    K: Float[ArrayLike, "..."],
    I: Float[ArrayLike, "..."],  # noqa: E741
    K_i: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Monod saturation under competitive inhibition.

        competitive_inhibition(S, K, I, K_i) = S / (K·(1 + I/K_i) + S)

    This is Monod kinetics with the apparent half-saturation constant `K·(1 + I/K_i)`; use
    it *instead of* (not multiplied with) `monod(S, K)`.

    **Arguments:**

    - `S`: substrate concentration [mM or g/L].
    - `K`: half-saturation constant [same unit as `S`], `K > 0`.
    - `I`: inhibitor concentration [mM or g/L].
    - `K_i`: inhibition constant [same unit as `I`], `K_i > 0`.

    `S` and `I` are clipped at zero, because an ODE solver can undershoot slightly below
    zero.

    **Returns:**

    Dimensionless factor in [0, 1).
    """
    S = jnp.maximum(S, 0.0)
    I = jnp.maximum(I, 0.0)  # noqa: E741
    return S / (K * (1.0 + I / K_i) + S)


def product_inhibition(
    P: Float[ArrayLike, "..."], P_max: Float[ArrayLike, "..."], n: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Levenspiel product-inhibition factor.

        product_inhibition(P, P_max, n) = (1 − P/P_max)ⁿ   for P < P_max
                                        = 0                 for P ≥ P_max

    **Arguments:**

    - `P`: product concentration [mM or g/L]. Clipped at zero, because an ODE solver can
        undershoot slightly below zero.
    - `P_max`: critical product concentration at which growth stops [same unit as `P`],
        `P_max > 0`.
    - `n`: toxicity exponent [dimensionless], `n > 0`.

    The gradient is finite (zero) at and above `P_max`.

    **Returns:**

    Dimensionless factor in [0, 1]: 1 at `P = 0`, `(1/2)ⁿ` at `P = P_max/2`.

    **Reference:** Levenspiel (1980).
    """
    P = jnp.maximum(P, 0.0)
    base = 1.0 - P / P_max
    inside = base > 0.0
    safe_base = jnp.where(inside, base, 1.0)
    return jnp.where(inside, safe_base**n, 0.0)


levenspiel = product_inhibition
