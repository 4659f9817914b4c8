"""Neural factors: small MLPs that stand for unknown terms of a rate expression."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .declarations import ModelError

__all__ = ["ACTIVATIONS", "MAX_DEPTH", "MAX_WEIGHTS", "Network", "NetworkFactor", "OUTPUTS"]

OUTPUTS = ("positive", "bounded", "free")
# hidden-layer activations by name, all functions of jax.nn (a whitelist: a model file
# names one, and no other attribute of jax.nn is ever looked up)
ACTIVATIONS = (
    "tanh",
    "relu",
    "softplus",
    "sigmoid",
    "gelu",
    "silu",
    "swish",
    "elu",
    "celu",
    "selu",
    "leaky_relu",
    "log_sigmoid",
    "hard_tanh",
    "relu6",
    "mish",
    "identity",
)
# Size limits, checked before any weight is allocated. A correction factor of a
# bioreactor rate needs hundreds to a few thousand weights; 10^6 float64 weights are
# 8 MB per copy (a fit holds several: members, optimiser moments, gradients).
MAX_WEIGHTS = 1_000_000  # weights and biases of one network, and of all of a model's
MAX_DEPTH = 16  # hidden layers of one network


@dataclass(frozen=True)
class Network:
    """Declaration of a network factor.

    Attributes:
        name: identifier used in rate expressions.
        inputs: names of the states, inputs, batch constants, parameters or ``t`` it
            reads. A parameter input (process-specific, real-valued, e.g. ``z1``) is a
            learned per-process *embedding*: fitted on several processes at once, the
            network learns what it means, and a new process needs only its own value
            (transfer strategy ``embedding``).
        hidden: widths of the hidden layers.
        output: ``"positive"`` (softplus), ``"bounded"`` (``scale * sigmoid``) or ``"free"``.
        scale: upper bound of a bounded output.
        activation: hidden-layer activation, one of :data:`ACTIVATIONS` (functions
            of ``jax.nn``; default ``"tanh"``).

    Raises:
        ModelError: a malformed field, an unknown output or activation, or a network
            over :data:`MAX_DEPTH` hidden layers or :data:`MAX_WEIGHTS` weights.
    """

    name: str
    inputs: tuple[str, ...]
    hidden: tuple[int, ...] = (16, 16)
    output: str = "positive"
    scale: float = 1.0
    activation: str = "tanh"

    def __post_init__(self):
        inputs, hidden = self.inputs, self.hidden
        if not isinstance(inputs, list | tuple) or not all(isinstance(x, str) for x in inputs):
            self._refuse("inputs", f"inputs must be a list of names, got {inputs!r}")
        object.__setattr__(self, "inputs", tuple(inputs))
        if not self.inputs:
            self._refuse("inputs", "needs at least one input")
        if not isinstance(hidden, list | tuple) or not all(_is_int(h) for h in hidden):
            self._refuse("hidden", f"hidden must be a list of layer widths, got {hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        if any(h < 1 for h in self.hidden):
            self._refuse("hidden", f"hidden layer widths must be >= 1, got {list(hidden)}")
        if len(set(self.hidden)) > 1:
            self._refuse("hidden", "hidden layers must have equal widths")
        if len(self.hidden) > MAX_DEPTH:
            self._refuse(
                "hidden", f"{len(self.hidden)} hidden layers exceed the limit of {MAX_DEPTH}"
            )
        if self.n_weights > MAX_WEIGHTS:
            self._refuse(
                "hidden",
                f"hidden = {list(self.hidden)} needs {self.n_weights:,} weights, over the "
                f"limit of {MAX_WEIGHTS:,} ({8 * MAX_WEIGHTS // 10**6} MB of float64); "
                "a rate factor needs far fewer, e.g. hidden = [16, 16]",
            )
        if not isinstance(self.output, str) or self.output not in OUTPUTS:
            self._refuse("output", f"output {self.output!r} is not one of {', '.join(OUTPUTS)}")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            self._refuse(
                "activation",
                f"unknown activation {self.activation!r} "
                f"(expected one of {', '.join(ACTIVATIONS)})",
            )
        if not (_is_number(self.scale) and 0 < self.scale < np.inf):
            self._refuse("scale", f"scale must be a positive number, got {self.scale!r}")

    def _refuse(self, key: str, message: str):
        raise ModelError(f"network {self.name!r}: {message}", f"networks.{self.name}.{key}")

    @property
    def n_weights(self) -> int:
        """Number of weights and biases of the MLP ``len(inputs) -> hidden -> 1``."""
        widths = (len(self.inputs), *self.hidden, 1)
        return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


class NetworkFactor(eqx.Module):
    """An MLP with normalised inputs and a constrained scalar output.

    ``f(x) = g(MLP((x - mean) / std))`` with g = softplus (positive, initialised near 1
    for inputs at their mean), ``scale * sigmoid`` (bounded) or identity (free).

    Attributes:
        mlp: the network, ``n_inputs -> 1``.
        mean, std: input normalisation, shape (n_inputs,), in the inputs' units.
        spec: the declaration (static).
    """

    mlp: eqx.nn.MLP
    mean: Float[Array, " n_in"]
    std: Float[Array, " n_in"]
    spec: Network = eqx.field(static=True)

    def __init__(self, spec: Network, *, key: PRNGKeyArray, mean=None, std=None):
        n = len(spec.inputs)
        self.spec = spec
        self.mlp = _mlp(n, spec, key)
        self.mean = jnp.zeros(n) if mean is None else jnp.asarray(mean, dtype=float)
        self.std = jnp.ones(n) if std is None else jnp.asarray(std, dtype=float)

    def __call__(self, x: Float[Array, " n_in"]) -> Float[Array, ""]:
        mean, std = jax.lax.stop_gradient((self.mean, self.std))  # data, not weights
        z = self.mlp((x - mean) / std)
        if self.spec.output == "positive":
            return jax.nn.softplus(z + _SOFTPLUS_INV_1)
        if self.spec.output == "bounded":
            return self.spec.scale * jax.nn.sigmoid(z)
        return z


def _mlp(n_in: int, spec: Network, key: PRNGKeyArray) -> eqx.nn.MLP:
    """An MLP ``n_in -> scalar`` with equinox's default initialisation, every weight and
    bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn with NumPy from `key`: JAX's
    random operations compile on first use (0.7 s in a new process)."""
    shapes = eqx.filter_eval_shape(
        eqx.nn.MLP,
        n_in,
        "scalar",
        width_size=spec.hidden[0] if spec.hidden else 0,
        depth=len(spec.hidden),
        activation=getattr(jax.nn, spec.activation),
        key=key,
    )
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)))

    def draw(layer: eqx.nn.Linear) -> eqx.nn.Linear:
        lim = 1 / np.sqrt(layer.in_features)
        w, b = (
            jnp.asarray(rng.uniform(-lim, lim, x.shape), x.dtype)
            for x in (layer.weight, layer.bias)
        )
        return eqx.tree_at(lambda x: (x.weight, x.bias), layer, (w, b))

    return eqx.tree_at(lambda m: m.layers, shapes, tuple(draw(layer) for layer in shapes.layers))


_SOFTPLUS_INV_1 = float(jnp.log(jnp.expm1(1.0)))  # softplus(this) == 1
