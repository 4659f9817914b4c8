"""Environmental factors: temperature and pH."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

GAS_CONSTANT = 8.314462618
"""Molar gas constant R [J/(mol·K)]."""


def cardinal_temperature(
    T: Float[ArrayLike, "..."],
    T_min: Float[ArrayLike, "..."],
    T_opt: Float[ArrayLike, "..."],
    T_max: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Cardinal temperature model with inflection (CTMI).

        τ(T) = (T − T_max)(T − T_min)²
               / ((T_opt − T_min)[(T_opt − T_min)(T − T_opt)
                                  − (T_opt − T_max)(T_opt + T_min − 2T)])

    for `T_min < T < T_max`, and 0 otherwise.

    **Arguments:**

    - `T`: temperature [°C or K].
    - `T_min`: minimum temperature for growth [same unit as `T`].
    - `T_opt`: optimum temperature [same unit as `T`].
    - `T_max`: maximum temperature for growth [same unit as `T`].

    Requires `T_min < T_opt < T_max` and `T_opt > (T_min + T_max)/2` (as in Rosso et al.);
    otherwise the denominator can vanish inside the range. The gradient is finite (zero)
    outside `(T_min, T_max)`.

    **Returns:**

    Dimensionless factor in [0, 1]: 1 at `T_opt`, 0 at and beyond `T_min` and `T_max`.

    **Reference:** Rosso, Lobry and Flandrois (1993).
    """
    inside = (T > T_min) & (T < T_max)
    T = jnp.where(inside, T, T_opt)
    numer = (T - T_max) * (T - T_min) ** 2
    denom = (T_opt - T_min) * (
        (T_opt - T_min) * (T - T_opt) - (T_opt - T_max) * (T_opt + T_min - 2.0 * T)
    )
    return jnp.where(inside, numer / denom, 0.0)


def cardinal_ph(
    pH: Float[ArrayLike, "..."],
    pH_min: Float[ArrayLike, "..."],
    pH_opt: Float[ArrayLike, "..."],
    pH_max: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Cardinal pH model (CPM).

        ρ(pH) = (pH − pH_min)(pH − pH_max)
                / ((pH − pH_min)(pH − pH_max) − (pH − pH_opt)²)

    for `pH_min < pH < pH_max`, and 0 otherwise.

    **Arguments:**

    - `pH`: pH [dimensionless].
    - `pH_min`: minimum pH for growth.
    - `pH_opt`: optimum pH, `pH_min < pH_opt < pH_max`.
    - `pH_max`: maximum pH for growth.

    The gradient is finite (zero) outside `(pH_min, pH_max)`.

    **Returns:**

    Dimensionless factor in [0, 1]: 1 at `pH_opt`, 0 at and beyond `pH_min` and `pH_max`.

    **Reference:** Rosso, Lobry, Bajard and Flandrois (1995).
    """
    inside = (pH > pH_min) & (pH < pH_max)
    pH = jnp.where(inside, pH, pH_opt)
    a = (pH - pH_min) * (pH - pH_max)
    return jnp.where(inside, a / (a - (pH - pH_opt) ** 2), 0.0)


def arrhenius(
    T: Float[ArrayLike, "..."], E_a: Float[ArrayLike, "..."], T_ref: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """Arrhenius temperature factor relative to a reference temperature.

        arrhenius(T, E_a, T_ref) = exp(−E_a/R · (1/T − 1/T_ref))

    with `R = GAS_CONSTANT = 8.314462618 J/(mol·K)`.

    **Arguments:**

    - `T`: temperature [K], `T > 0`.
    - `E_a`: activation energy [J/mol].
    - `T_ref`: reference temperature [K], `T_ref > 0`.

    **Returns:**

    Dimensionless positive factor, equal to 1 at `T = T_ref` (greater than 1 above `T_ref`
    for `E_a > 0`).

    **Reference:** Arrhenius (1889).
    """
    return jnp.exp(-E_a / GAS_CONSTANT * (1.0 / jnp.asarray(T) - 1.0 / T_ref))
