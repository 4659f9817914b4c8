"""Model files and the expression whitelist: good files build, bad ones name the line."""

import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybridxfer as hx
from hybridxfer._core.expressions import ExpressionError, parse_expression
from hybridxfer._core.networks import NetworkFactor
from hybridxfer._core.parameters import constrain_all

GOOD = textwrap.dedent(
    """\
    [model]
    name = "toy"
    time_unit = "h"

    [states]
    X = { unit = "g/L" }
    S = { unit = "g/L" }

    [inputs]
    F = { unit = "L/h" }

    [constants]
    Sf = { unit = "g/L" }

    [reactor]
    mode = "fed-batch"
    volume = { name = "V", initial = 1.5 }
    feed_rate = "F"
    feed = { S = "Sf" }

    [parameters]
    mu_max = { value = 0.3, unit = "1/h", bounds = [0.01, 1.0] }
    K = { value = 0.5, unit = "g/L", fixed = true }
    Y = { value = 0.5, unit = "g/g" }

    [networks.corr]
    inputs = ["S", "F"]
    hidden = [4, 4]
    output = "bounded"
    scale = 2.0

    [rates]
    mu = "mu_max * monod(S, K) * corr"

    [balances]
    X = "mu * X"
    S = "-mu / Y * X"
    """
)


def test_good_file_builds():
    model = hx.parse_model(GOOD)
    assert model.name == "toy"
    assert model.state_names == ("X", "S", "V")
    assert model.units["mu_max"] == "1/h"
    values = model.parameter_values()
    np.testing.assert_allclose(float(values["mu_max"]), 0.3, rtol=1e-12)
    np.testing.assert_allclose(float(values["K"]), 0.5)
    assert model.free.shape == (2,)  # K is fixed
    y0 = model.initial_state(jnp.array([0.1, 5.0, np.nan]), jnp.array([100.0]))
    np.testing.assert_allclose(y0, [0.1, 5.0, 1.5])


def _replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def _line(text: str, fragment: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if fragment in line)


BAD = [
    # (old, new, fragment on the reported line, message)
    ('K = { value = 0.5, unit = "g/L", fixed = true }', "K = { value = 0.5 }", "K = {", "no unit"),
    (
        'mu = "mu_max * monod(S, K) * corr"',
        'mu = "mu_max * monod(S, Kx)"',
        "mu =",
        "unknown name 'Kx'",
    ),
    (
        'mu = "mu_max * monod(S, K) * corr"',
        'mu = "mu_max * foo(S)"',
        "mu =",
        "unknown function 'foo'",
    ),
    ('mu = "mu_max * monod(S, K) * corr"', 'mu = "mu_max * monod(S)"', "mu =", "takes 2 argument"),
    ('mu = "mu_max * monod(S, K) * corr"', 'mu = "mu_max * (S"', "mu =", "syntax error"),
    (
        'mu = "mu_max * monod(S, K) * corr"',
        'mu = "S.__class__"',
        "mu =",
        "Attribute is not allowed",
    ),
    ('mu = "mu_max * monod(S, K) * corr"', 'mu = "[S][0]"', "mu =", "not allowed"),
    ('mu = "mu_max * monod(S, K) * corr"', 'mu = "S if S > 0 else 0"', "mu =", "not allowed"),
    ('mu = "mu_max * monod(S, K) * corr"', "mu = \"__import__('os')\"", "mu =", "unknown function"),
    ('S = "-mu / Y * X"', 'Z = "-mu / Y * X"', "[balances]", "missing for state(s) ['S']"),
    (
        'Y = { value = 0.5, unit = "g/g" }',
        'Y = { value = 0.5, unit = "g/g", bound = [0, 1] }',
        "Y = {",
        "unknown key(s) ['bound']",
    ),
    (
        'Y = { value = 0.5, unit = "g/g" }',
        'Y = { value = -0.5, unit = "g/g" }',
        "Y = {",
        "must be > 0",
    ),
    (
        'Y = { value = 0.5, unit = "g/g" }',
        'Y = { value = 5.0, unit = "g/g", bounds = [0.1, 1] }',
        "Y = {",
        "outside its bounds",
    ),
    ('inputs = ["S", "F"]', 'inputs = ["S", "pH"]', "[networks.corr]", "unknown input(s) ['pH']"),
    ('output = "bounded"', 'output = "sigmoid"', 'output = "sigmoid"', "output 'sigmoid'"),
    # hostile network sizes and names: refused before anything is allocated or looked up
    ("hidden = [4, 4]", "hidden = [0]", "hidden = [0]", "widths must be >= 1, got [0]"),
    ("hidden = [4, 4]", "hidden = [-4, -4]", "hidden = [-4", "widths must be >= 1"),
    ("hidden = [4, 4]", "hidden = 3", "hidden = 3", "hidden must be a list of layer widths"),
    ("hidden = [4, 4]", "hidden = [true]", "hidden = [true]", "hidden must be a list"),
    (
        "hidden = [4, 4]",
        "hidden = [60000, 60000]",
        "hidden = [60000",
        "needs 3,600,300,001 weights, over the limit of 1,000,000",
    ),
    ("hidden = [4, 4]", "hidden = [" + "2, " * 17 + "2]", "hidden = [2", "exceed the limit of 16"),
    (
        'output = "bounded"',
        'output = "bounded"\nactivation = "__class__"',
        "activation =",
        "unknown activation '__class__' (expected one of tanh,",
    ),
    ('inputs = ["S", "F"]', 'inputs = "SF"', 'inputs = "SF"', "inputs must be a list of names"),
    ('X = { unit = "g/L" }', 'X = { unit = "g/L", range = [1, 0] }', "X = {", "lo < hi"),
    ('X = { unit = "g/L" }', 'X = { unit = "g/L", range = ["0", 1] }', "X = {", "two numbers"),
    ('mode = "fed-batch"', 'mode = "fedbatch"', "[reactor]", "reactor mode 'fedbatch'"),
    ('feed = { S = "Sf" }', 'feed = { Q = "Sf" }', "[reactor]", "'Q' is not a state"),
    ('X = { unit = "g/L" }', 'mu_max = { unit = "g/L" }', "mu_max = { value", "declared twice"),
]


@pytest.mark.parametrize("old,new,fragment,message", BAD)
def test_bad_file_names_the_line(old, new, fragment, message):
    text = _replace(old, new)
    with pytest.raises(hx.ModelFileError) as info:
        hx.parse_model(text, source="toy.toml")
    msg = str(info.value)
    assert message in msg
    assert f"toy.toml, line {_line(text, fragment)}:" in msg


def test_circular_rates_and_unknown_table():
    text = _replace('mu = "mu_max * monod(S, K) * corr"', 'mu = "g * 2"\ng = "mu"')
    with pytest.raises(hx.ModelFileError, match="circular definition"):
        hx.parse_model(text)
    with pytest.raises(hx.ModelFileError, match=r"line 1: \[outputs\] unknown table"):
        hx.parse_model("[outputs]\nx = 1\n" + GOOD)


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(hx.ModelFileError, match=r"bad.toml: TOML syntax error.*line 5"):
        hx.parse_model(GOOD.replace("[states]", "[states"), source="bad.toml")
    with pytest.raises(hx.ModelFileError, match="cannot read model file"):
        hx.load_model(tmp_path / "none.toml")


def test_expression_values_against_hand_computation():
    known = {"a", "b"}
    env = {"a": 2.0, "b": 3.0}
    cases = {
        "a + b * 2 - 1": 7.0,
        "-a ** 2": -4.0,
        "a / b": 2.0 / 3.0,
        "exp(log(a)) + sqrt(9) + abs(-b)": 8.0,
        "min(a, b, 1) + max(a, b)": 4.0,
        "monod(a, 2)": 0.5,  # S = K -> 1/2
        "haldane(a, 1, 4)": 2.0 / (1 + 2 + 1),  # S/(K + S + S^2/Ki)
    }
    for source, expected in cases.items():
        np.testing.assert_allclose(float(parse_expression(source, known)(env)), expected)
    assert parse_expression("a * monod(b, 1)", known).names == {"a", "b"}
    with pytest.raises(ExpressionError, match="Call is not allowed"):
        parse_expression("monod(S=a, K=b)", known)


def test_network_factor_evaluates_given_weights():
    """An MLP factor with set weights equals the same forward pass written in numpy."""
    spec = hx.Network("g", inputs=("S", "F"), hidden=(3,), output="positive")
    net = NetworkFactor(spec, key=jax.random.PRNGKey(1), mean=[1.0, 0.0], std=[2.0, 0.5])
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(3, 2)), rng.normal(size=3)
    w2, b2 = rng.normal(size=(1, 3)), rng.normal(size=1)
    net = eqx.tree_at(
        lambda n: [getattr(n.mlp.layers[i], p) for i in (0, 1) for p in ("weight", "bias")],
        net,
        [jnp.asarray(a) for a in (w1, b1, w2, b2)],
    )
    x = np.array([3.0, 0.25])
    z = (x - [1.0, 0.0]) / [2.0, 0.5]
    h = np.tanh(w1 @ z + b1)
    out = (w2 @ h + b2)[0] + np.log(np.expm1(1.0))  # softplus shifted so that f = 1 at z = 0
    np.testing.assert_allclose(float(net(jnp.asarray(x))), np.log1p(np.exp(out)), rtol=1e-12)


def test_parametrisations_against_their_closed_forms():
    """constrain_all, one vectorised program, gives each parametrisation's closed form
    (exp z; lo (hi/lo)^sigmoid(z); z; lo + (hi - lo) sigmoid(z)), inverts unconstrain,
    and has finite gradients where a bounded parameter saturates."""
    ps = [
        hx.Parameter("a", 0.5, "1"),
        hx.Parameter("b", 0.3, "1", bounds=(0.01, 2.0)),
        hx.Parameter("c", -1.0, "1", positive=False),
        hx.Parameter("d", 0.2, "1", positive=False, bounds=(-1.0, 1.0)),
    ]
    z = np.array([0.3, -1.2, 2.5, 0.7])
    sig = 1 / (1 + np.exp(-z))
    closed = [np.exp(z[0]), 0.01 * 200.0 ** sig[1], z[2], -1.0 + 2.0 * sig[3]]
    np.testing.assert_allclose(constrain_all(ps, z), closed, rtol=1e-14)
    back = [p.unconstrain(p.value) for p in ps]
    np.testing.assert_allclose(constrain_all(ps, back), [p.value for p in ps], rtol=1e-13)
    assert float(ps[1].constrain(z[1])) == pytest.approx(closed[1], rel=1e-14)
    grad = jax.grad(lambda z: constrain_all(ps, z).sum())(jnp.array([1.0, -800.0, 5.0, 800.0]))
    assert np.isfinite(np.asarray(grad)).all()
