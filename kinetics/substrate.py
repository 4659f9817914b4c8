"""Substrate-limitation (and substrate-inhibition) factors for specific growth rates."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def monod(S: Float[ArrayLike, "..."], K: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Monod saturation kinetics.

        monod(S, K) = S / (K + S)

    **Arguments:**

    - `S`: substrate concentration [mM or g/L]. Clipped at zero, because an ODE solver can
        undershoot slightly below zero.
    - `K`: half-saturation constant [same unit as `S`], `K > 0`.

    **Returns:**

    Dimensionless factor in [0, 1): 0 at `S = 0`, 1/2 at `S = K`, tending to 1 as `S → ∞`.

    **Reference:** Monod (1949).
    """
    S = jnp.maximum(S, 0.0)
    return S / (K + S)


def contois(
    S: Float[ArrayLike, "..."], X: Float[ArrayLike, "..."], K: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Contois kinetics: Monod with a half-saturation constant proportional to biomass.

        contois(S, X, K) = S / (K·X + S)

    **Arguments:**

    - `S`: substrate concentration [mM or g/L].
    - `X`: biomass concentration [e.g. g/L or 10⁶ cells/mL].
    - `K`: Contois constant [unit of `S` per unit of `X`], `K > 0`.

    `S` and `X` are clipped at zero, because an ODE solver can undershoot slightly below
    zero. Where `K·X + S = 0` (no substrate and no biomass) the factor is defined as 0.

    **Returns:**

    Dimensionless factor in [0, 1].

    **Reference:** Contois (1959).
    """
    S = jnp.maximum(S, 0.0)
    X = jnp.maximum(X, 0.0)
    denom = K * X + S
    positive = denom > 0.0
    safe_denom = jnp.where(positive, denom, 1.0)
    return jnp.where(positive, S / safe_denom, 0.0)


def haldane(
    S: Float[ArrayLike, "..."], K: Float[ArrayLike, "..."], K_i: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Haldane (Andrews) kinetics: saturation with substrate inhibition.

        haldane(S, K, K_i) = S / (K + S + S²/K_i)

    The maximum is at `S* = √(K·K_i)`, with value `1 / (1 + 2√(K/K_i))`.

    **Arguments:**

    - `S`: substrate concentration [mM or g/L]. Clipped at zero, because an ODE solver can
        undershoot slightly below zero.
    - `K`: half-saturation constant [same unit as `S`], `K > 0`.
    - `K_i`: substrate-inhibition constant [same unit as `S`], `K_i > 0`.

    **Returns:**

    Dimensionless factor in [0, 1).

    **Reference:** Haldane (1930); Andrews (1968).
    """
    S = jnp.maximum(S, 0.0)
    return S / (K + S + S**2 / K_i)


andrews = haldane


def moser(
    S: Float[ArrayLike, "..."], K: Float[ArrayLike, "..."], n: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Moser kinetics: Monod with a power of the substrate concentration.

        moser(S, K, n) = Sⁿ / (K + Sⁿ)

    Reduces to Monod for `n = 1`.

    **Arguments:**

    - `S`: substrate concentration [mM or g/L]. Clipped at zero, because an ODE solver can
        undershoot slightly below zero (and `Sⁿ` would be NaN there).
    - `K`: saturation constant [unit of `S` to the power `n`], `K > 0`.
    - `n`: exponent [dimensionless], `n > 0`.

    At `S ≤ 0` the factor is 0 with zero gradient (also for `n < 1`, where the true
    derivative at `S = 0` is infinite).

    **Returns:**

    Dimensionless factor in [0, 1).

    **Reference:** Moser (1958).
    """
    positive = S > 0.0
    safe_S = jnp.where(positive, S, 1.0)
    S_n = jnp.where(positive, safe_S**n, 0.0)
    return S_n / (K + S_n)


def tessier(S: Float[ArrayLike, "..."], K: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Tessier (Teissier) exponential saturation kinetics.

        tessier(S, K) = 1 − exp(−S/K)

    **Arguments:**

    - `S`: substrate concentration [mM or g/L]. Clipped at zero, because an ODE solver can
        undershoot slightly below zero.
    - `K`: saturation constant [same unit as `S`], `K > 0`.

    **Returns:**

    Dimensionless factor in [0, 1): 0 at `S = 0`, `1 − 1/e` at `S = K`.

    **Reference:** Teissier (1942).
    """
    S = jnp.maximum(S, 0.0)
    return 1.0 - jnp.exp(-S / K)
