"""Tests for the `kinetics` rate laws against hand-computed values and known limits."""

import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import kinetics  # noqa: E402
from kinetics import (  # noqa: E402
    GAS_CONSTANT,
    RATE_LAWS,
    andrews,
    arrhenius,
    cardinal_ph,
    cardinal_temperature,
    competitive_inhibition,
    contois,
    haldane,
    levenspiel,
    luedeking_piret,
    monod,
    moser,
    noncompetitive_inhibition,
    pirt,
    product_inhibition,
    tessier,
)


def close(actual, expected, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol)


# --- substrate ------------------------------------------------------------------------


def test_monod():
    close(monod(2.0, 3.0), 0.4)  # 2 / (3 + 2) = 0.4
    close(monod(3.0, 3.0), 0.5)  # S = K -> 1/2
    close(monod(0.0, 3.0), 0.0)
    close(monod(-1e-9, 3.0), 0.0)  # clipped at zero
    close(monod(1e12, 3.0), 1.0, rtol=1e-10)  # -> 1 as S -> inf


def test_contois():
    close(contois(2.0, 4.0, 0.5), 0.5)  # 2 / (0.5 * 4 + 2) = 2 / 4
    S = jnp.array([0.0, 0.1, 1.0, 10.0])
    X = jnp.array([2.0, 0.5, 3.0, 1.0])
    close(contois(S, X, 0.7), monod(S, 0.7 * X))  # Monod with K * X
    close(contois(0.0, 0.0, 0.7), 0.0)  # no substrate, no biomass: defined as 0
    close(contois(1.0, 0.0, 0.7), 1.0)  # 1 / (0 + 1)


def test_haldane():
    close(haldane(2.0, 1.0, 4.0), 0.5)  # 2 / (1 + 2 + 4/4) = 2 / 4
    # K = 1, K_i = 9: maximum at S* = sqrt(1 * 9) = 3, value 1 / (1 + 2 sqrt(1/9)) = 0.6
    close(haldane(3.0, 1.0, 9.0), 0.6)  # 3 / (1 + 3 + 9/9) = 3 / 5
    assert float(haldane(2.9, 1.0, 9.0)) < 0.6
    assert float(haldane(3.1, 1.0, 9.0)) < 0.6
    close(jax.grad(haldane)(3.0, 1.0, 9.0), 0.0, atol=1e-12)
    close(haldane(0.0, 1.0, 9.0), 0.0)
    assert andrews is haldane


def test_moser():
    close(moser(2.0, 4.0, 2.0), 0.5)  # 2**2 / (4 + 2**2) = 4 / 8
    close(moser(4.0, 1.0, 0.5), 2.0 / 3.0)  # sqrt(4) / (1 + 2) = 2/3
    S = jnp.array([0.0, 0.3, 2.0, 50.0])
    close(moser(S, 1.7, 1.0), monod(S, 1.7))  # n = 1 is Monod
    close(moser(-1e-6, 1.0, 0.5), 0.0)  # clipped: no NaN from (-x)**0.5


def test_tessier():
    close(tessier(2.5, 2.5), 1.0 - math.exp(-1.0))  # S = K -> 1 - 1/e
    close(tessier(2.0 * math.log(2.0), 2.0), 0.5)  # 1 - exp(-ln 2) = 1/2
    close(tessier(0.0, 2.0), 0.0)
    close(tessier(-1.0, 2.0), 0.0)


# --- inhibition -----------------------------------------------------------------------


def test_noncompetitive_inhibition():
    close(noncompetitive_inhibition(2.0, 2.0), 0.5)  # I = K_i -> 1/2
    close(noncompetitive_inhibition(3.0, 1.0), 0.25)  # 1 / (1 + 3)
    close(noncompetitive_inhibition(0.0, 1.0), 1.0)
    close(noncompetitive_inhibition(-0.1, 1.0), 1.0)  # clipped


def test_competitive_inhibition():
    close(competitive_inhibition(2.0, 1.0, 2.0, 2.0), 0.5)  # 2 / (1 * (1 + 2/2) + 2) = 2/4
    S = jnp.array([0.0, 0.5, 3.0, 40.0])
    K, inhibitor, K_i = 1.5, 0.8, 0.2
    expected = monod(S, K * (1.0 + inhibitor / K_i))  # apparent K(1 + I/K_i)
    close(competitive_inhibition(S, K, inhibitor, K_i), expected)
    close(competitive_inhibition(S, K, 0.0, K_i), monod(S, K))  # no inhibitor: Monod


def test_product_inhibition():
    close(product_inhibition(25.0, 100.0, 2.0), 0.5625)  # (1 - 25/100)**2 = 0.75**2
    close(product_inhibition(50.0, 100.0, 3.0), 0.125)  # P = P_max/2 -> (1/2)**3
    close(product_inhibition(0.0, 100.0, 3.0), 1.0)
    close(product_inhibition(100.0, 100.0, 0.5), 0.0)  # P = P_max
    close(product_inhibition(150.0, 100.0, 0.5), 0.0)  # P > P_max
    close(product_inhibition(-1.0, 100.0, 0.5), 1.0)  # clipped
    assert levenspiel is product_inhibition


# --- production -----------------------------------------------------------------------


def test_luedeking_piret():
    # alpha * mu + beta = 2 * 0.1 + 0.05 = 0.25
    close(luedeking_piret(0.1, 2.0, 0.05), 0.25)
    close(luedeking_piret(0.0, 2.0, 0.05), 0.05)  # purely non-growth associated
    assert isinstance(luedeking_piret(0.1, 2.0, 0.05), jax.Array)


def test_pirt():
    # mu / Y_max + m = 0.2 / 0.5 + 0.03 = 0.43
    close(pirt(0.2, 0.5, 0.03), 0.43)
    close(pirt(0.0, 0.5, 0.03), 0.03)  # maintenance only
    assert isinstance(pirt(0.2, 0.5, 0.03), jax.Array)


# --- environment ----------------------------------------------------------------------


def test_cardinal_temperature():
    T_min, T_opt, T_max = 5.0, 37.0, 45.0
    close(cardinal_temperature(T_opt, T_min, T_opt, T_max), 1.0)
    # T = 25: numerator (25 - 45)(25 - 5)**2 = -20 * 400 = -8000;
    # denominator (37 - 5)[(37 - 5)(25 - 37) - (37 - 45)(37 + 5 - 50)]
    #   = 32 * [32 * (-12) - (-8)(-8)] = 32 * (-448) = -14336;  -8000 / -14336 = 125/224
    close(cardinal_temperature(25.0, T_min, T_opt, T_max), 125.0 / 224.0)
    T = jnp.array([-10.0, 0.0, T_min, T_max, 50.0, 100.0])
    close(cardinal_temperature(T, T_min, T_opt, T_max), np.zeros(6))
    T_in = jnp.linspace(T_min + 0.01, T_max - 0.01, 101)
    tau = cardinal_temperature(T_in, T_min, T_opt, T_max)
    assert bool(jnp.all((tau > 0.0) & (tau <= 1.0 + 1e-12)))


def test_cardinal_ph():
    pH_min, pH_opt, pH_max = 4.0, 7.0, 9.0
    close(cardinal_ph(pH_opt, pH_min, pH_opt, pH_max), 1.0)
    # pH = 5: numerator (5 - 4)(5 - 9) = -4; denominator -4 - (5 - 7)**2 = -8 -> 1/2
    close(cardinal_ph(5.0, pH_min, pH_opt, pH_max), 0.5)
    pH = jnp.array([1.0, pH_min, pH_max, 9.5, 14.0])
    close(cardinal_ph(pH, pH_min, pH_opt, pH_max), np.zeros(5))


def test_arrhenius():
    assert GAS_CONSTANT == 8.314462618
    close(arrhenius(303.15, 50e3, 303.15), 1.0)  # 1 at T_ref
    # E_a = 50 kJ/mol, T = 37 °C = 310.15 K vs T_ref = 30 °C = 303.15 K:
    # exp(-50000 / 8.314462618 * (1/310.15 - 1/303.15)) ≈ exp(0.4477) ≈ 1.565
    expected = math.exp(-50000.0 / 8.314462618 * (1.0 / 310.15 - 1.0 / 303.15))
    close(arrhenius(310.15, 50e3, 303.15), expected)
    assert 1.56 < expected < 1.57
    assert float(arrhenius(296.15, 50e3, 303.15)) < 1.0  # slower below T_ref


# --- RATE_LAWS: jit, vmap, grad -------------------------------------------------------

# Per rate law: one valid argument tuple and argument tuples inside/outside the valid
# range (negative concentrations, at and beyond boundaries).
CASES = {
    "monod": [(2.0, 3.0), (0.0, 3.0), (-1e-3, 3.0)],
    "contois": [(2.0, 4.0, 0.5), (0.0, 0.0, 0.5), (-1e-3, -1e-3, 0.5), (1.0, 0.0, 0.5)],
    "haldane": [(2.0, 1.0, 4.0), (0.0, 1.0, 4.0), (-1e-3, 1.0, 4.0)],
    "moser": [(2.0, 4.0, 0.5), (0.0, 4.0, 0.5), (-1e-3, 4.0, 0.5), (-1e-3, 4.0, 2.0)],
    "tessier": [(2.0, 3.0), (0.0, 3.0), (-1e-3, 3.0)],
    "noncompetitive_inhibition": [(2.0, 1.0), (0.0, 1.0), (-1e-3, 1.0)],
    "competitive_inhibition": [
        (2.0, 1.0, 0.5, 2.0),
        (0.0, 1.0, 0.0, 2.0),
        (-1e-3, 1.0, -1e-3, 2.0),
    ],
    "product_inhibition": [
        (25.0, 100.0, 0.5),
        (-1e-3, 100.0, 0.5),
        (100.0, 100.0, 0.5),
        (150.0, 100.0, 0.5),
    ],
    "luedeking_piret": [(0.1, 2.0, 0.05), (0.0, 2.0, 0.05), (-0.01, 2.0, 0.05)],
    "pirt": [(0.2, 0.5, 0.03), (0.0, 0.5, 0.03), (-0.01, 0.5, 0.03)],
    "cardinal_temperature": [
        (25.0, 5.0, 37.0, 45.0),
        (5.0, 5.0, 37.0, 45.0),
        (45.0, 5.0, 37.0, 45.0),
        (-20.0, 5.0, 37.0, 45.0),
        (60.0, 5.0, 37.0, 45.0),
    ],
    "cardinal_ph": [
        (5.0, 4.0, 7.0, 9.0),
        (4.0, 4.0, 7.0, 9.0),
        (9.0, 4.0, 7.0, 9.0),
        (2.0, 4.0, 7.0, 9.0),
        (12.0, 4.0, 7.0, 9.0),
    ],
    "arrhenius": [(310.15, 50e3, 303.15), (303.15, 50e3, 303.15), (250.0, 80e3, 303.15)],
    "andrews": [(2.0, 1.0, 4.0), (-1e-3, 1.0, 4.0)],
    "levenspiel": [(25.0, 100.0, 2.0), (120.0, 100.0, 2.0)],
}


def test_rate_laws_registry():
    assert set(RATE_LAWS) == set(CASES)
    for name, fn in RATE_LAWS.items():
        assert getattr(kinetics, name) is fn
        assert name in kinetics.__all__
    assert RATE_LAWS["andrews"] is RATE_LAWS["haldane"]
    assert RATE_LAWS["levenspiel"] is RATE_LAWS["product_inhibition"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_matches_eager(name):
    fn = RATE_LAWS[name]
    for args in CASES[name]:
        eager = fn(*args)
        assert isinstance(eager, jax.Array)
        assert eager.dtype == jnp.float64
        close(jax.jit(fn)(*args), eager)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_matches_loop(name):
    fn = RATE_LAWS[name]
    batched = tuple(jnp.array(column) for column in zip(*CASES[name], strict=True))
    out = jax.vmap(fn)(*batched)
    close(out, np.array([float(fn(*args)) for args in CASES[name]]))
    # broadcasting: a batch in the first argument, scalar parameters
    first = batched[0]
    out = jax.vmap(fn, in_axes=(0,) + (None,) * (len(batched) - 1))(first, *CASES[name][0][1:])
    close(out, fn(first, *CASES[name][0][1:]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_grad_finite(name):
    fn = RATE_LAWS[name]
    for args in CASES[name]:
        argnums = tuple(range(len(args)))
        grads = jax.jit(jax.grad(fn, argnums=argnums))(*args)
        assert all(bool(jnp.isfinite(g)) for g in grads), (name, args, grads)
        assert bool(jnp.isfinite(fn(*args)))


def test_grad_hand_values():
    # d/dS S/(K+S) = K/(K+S)**2 = 3/25 at S = 2, K = 3
    close(jax.grad(monod)(2.0, 3.0), 3.0 / 25.0)
    # d/dT of the Arrhenius factor = f * E_a / (R T**2); at T = T_ref: E_a / (R T_ref**2)
    close(jax.grad(arrhenius)(303.15, 50e3, 303.15), 50e3 / (8.314462618 * 303.15**2))
    # d/dP (1 - P/P_max)**n = -n/P_max (1 - P/P_max)**(n-1) = -2/100 * 0.75 at P = 25
    close(jax.grad(product_inhibition)(25.0, 100.0, 2.0), -0.015)


# --- properties -----------------------------------------------------------------------

conc = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
exponent = st.floats(min_value=0.1, max_value=4.0, allow_nan=False, allow_infinity=False)


def in_unit_interval(x):
    x = float(x)
    return 0.0 <= x <= 1.0


@settings(max_examples=50, deadline=None)
@given(S=conc, I=conc, K=positive, K_i=positive, n=exponent)
def test_factors_in_unit_interval(S, I, K, K_i, n):  # noqa: E741
    assert in_unit_interval(monod(S, K))
    assert in_unit_interval(haldane(S, K, K_i))
    assert in_unit_interval(moser(S, K, n))
    assert in_unit_interval(tessier(S, K))
    assert in_unit_interval(noncompetitive_inhibition(I, K_i))
    assert in_unit_interval(competitive_inhibition(S, K, I, K_i))
    assert in_unit_interval(product_inhibition(I, K_i, n))


@settings(max_examples=50, deadline=None)
@given(
    pH=st.floats(min_value=0.0, max_value=14.0),
    pH_min=st.floats(min_value=2.0, max_value=5.0),
    width_low=st.floats(min_value=0.5, max_value=3.0),
    width_high=st.floats(min_value=0.5, max_value=3.0),
)
def test_cardinal_ph_in_unit_interval(pH, pH_min, width_low, width_high):
    pH_opt = pH_min + width_low
    pH_max = pH_opt + width_high
    assert in_unit_interval(cardinal_ph(pH, pH_min, pH_opt, pH_max))
