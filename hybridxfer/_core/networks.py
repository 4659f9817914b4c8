"""Neural factors: small MLPs that stand for unknown terms of a rate expression."""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["Network", "NetworkFactor", "OUTPUTS"]

OUTPUTS = ("positive", "bounded", "free")


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
        activation: hidden-layer activation, a name in ``jax.nn`` (default ``"tanh"``).
    """

    name: str
    inputs: tuple[str, ...]
    hidden: tuple[int, ...] = (16, 16)
    output: str = "positive"
    scale: float = 1.0
    activation: str = "tanh"

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.inputs:
            raise ValueError(f"network {self.name!r} needs at least one input")
        if self.output not in OUTPUTS:
            raise ValueError(
                f"network {self.name!r}: output {self.output!r} is not one of {', '.join(OUTPUTS)}"
            )
        if len(set(self.hidden)) > 1:
            raise ValueError(f"network {self.name!r}: hidden layers must have equal widths")
        if not hasattr(jax.nn, self.activation):
            raise ValueError(f"network {self.name!r}: unknown activation {self.activation!r}")


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
