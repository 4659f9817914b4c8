"""The hybrid model: its trained arrays (free parameters, network weights) and its
dynamics (vector field, observations, events, rates) over its compiled structure
(:mod:`hybridxfer._core.structure`: states, inputs, parameters, networks, rates,
balances and reactor)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .declarations import Constant, Input, ModelError, Observation, State
from .networks import MAX_WEIGHTS, Network, NetworkFactor
from .parameters import Parameter, constrain_all
from .reactor import AbstractReactor, Batch
from .structure import Structure, compiled

__all__ = ["Constant", "HybridModel", "Input", "ModelError", "Observation", "State"]


class HybridModel(eqx.Module):
    """A bioreactor model whose rate expressions may contain neural factors.

    The vector field, for states C (concentrations) and volume V, is the user's
    reaction terms plus the reactor's flows (see :mod:`hybridxfer.reactor`).
    Build one with :meth:`build` (Python) or :func:`hybridxfer.load_model` (TOML).

    Attributes:
        free: unconstrained values of the free (not fixed) parameters, shape (n_free,).
        networks: the network factors, by name.
    """

    free: Float[Array, " n_free"]
    networks: dict[str, NetworkFactor]
    structure: Structure = eqx.field(static=True)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        *,
        name: str,
        states: Sequence[State],
        parameters: Sequence[Parameter],
        rates: Mapping[str, str],
        balances: Mapping[str, str],
        reactor: AbstractReactor | None = None,
        inputs: Sequence[Input] = (),
        constants: Sequence[Constant] = (),
        networks: Sequence[Network] = (),
        observations: Sequence[Observation] = (),
        time_unit: str = "h",
        key: PRNGKeyArray | None = None,
    ) -> HybridModel:
        """Check and compile a model declaration.

        Expressions are strings parsed by :func:`hybridxfer.expressions.parse_expression`.
        `key` initialises the network weights (required when there are networks).

        Raises:
            ModelError: naming the offending declaration.
        """
        reactor = Batch() if reactor is None else reactor
        structure = compiled(
            name=name,
            states=states,
            parameters=parameters,
            rates=rates,
            balances=balances,
            reactor=reactor,
            inputs=inputs,
            constants=constants,
            networks=networks,
            observations=observations,
            time_unit=time_unit,
        )
        weights = sum(n.n_weights for n in networks)
        if weights > MAX_WEIGHTS:
            raise ModelError(
                f"the networks need {weights:,} weights together, over the limit of "
                f"{MAX_WEIGHTS:,} ({8 * MAX_WEIGHTS // 10**6} MB of float64)",
                f"networks.{max(networks, key=lambda n: n.n_weights).name}",
            )
        if networks and key is None:
            raise ModelError("a model with networks needs a PRNG key to initialise them")
        keys = jax.random.split(key, len(networks)) if networks else []
        nets = {n.name: NetworkFactor(n, key=k) for n, k in zip(networks, keys)}
        free = jnp.array([p.unconstrain(p.value) for p in parameters if not p.fixed], dtype=float)
        return cls(free=free, networks=nets, structure=structure)

    # ---------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        return self.structure.name

    @property
    def state_names(self) -> tuple[str, ...]:
        """States in vector order; the reactor's volume comes last."""
        names = tuple(s.name for s in self.structure.states)
        return names + (
            (self.structure.reactor.volume,) if self.structure.reactor.has_volume else ()
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        """Continuous inputs (the vector field's `inputs`); event inputs excluded."""
        events = self.structure.reactor.events
        return tuple(i.name for i in self.structure.inputs if i.name not in events)

    @property
    def observation_names(self) -> tuple[str, ...]:
        """Observed signals declared by observation equations."""
        return tuple(o.name for o in self.structure.observations)

    @property
    def variable_names(self) -> tuple[str, ...]:
        """What a solve outputs and a fit scores: `state_names`, then `observation_names`."""
        return self.state_names + self.observation_names

    @property
    def event_names(self) -> tuple[str, ...]:
        """Event inputs: amounts at an instant (bolus volume, withdrawn volume)."""
        return self.structure.reactor.events

    @property
    def linear_inputs(self) -> tuple[bool, ...]:
        """For each continuous input, whether it is interpolated linearly."""
        kind = {i.name: i.interpolation for i in self.structure.inputs}
        return tuple(kind[n] == "linear" for n in self.input_names)

    @property
    def constant_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.structure.constants)

    @property
    def process_specific(self) -> tuple[bool, ...]:
        """For each free parameter (entry of `free`), whether it is process-specific."""
        return tuple(p.process_specific for p in self.structure.parameters if not p.fixed)

    @property
    def batch_sd(self) -> tuple[float, ...]:
        """For each free parameter, its batch-to-batch sd (0: the same in every batch)."""
        return tuple(p.batch_sd or 0.0 for p in self.structure.parameters if not p.fixed)

    @property
    def estimated_states(self) -> tuple[bool, ...]:
        """For each entry of `state_names`, whether its initial value is fitted per batch."""
        est = tuple(s.initial == "estimate" for s in self.structure.states)
        return est + ((False,) if self.structure.reactor.has_volume else ())

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """Physically possible values ``(lo, hi)`` of every entry of `variable_names`
        (declared with ``range``; the reactor's volume is non-negative)."""
        s = self.structure
        out = {x.name: x.range for x in s.states}
        if s.reactor.has_volume:
            out[s.reactor.volume] = (0.0, float("inf"))
        out.update({o.name: o.range for o in s.observations})
        return out

    @property
    def units(self) -> dict[str, str]:
        """Unit of every state, input, constant, parameter and observation."""
        s = self.structure
        out = {
            x.name: x.unit
            for x in (*s.states, *s.inputs, *s.constants, *s.parameters, *s.observations)
        }
        if s.reactor.has_volume:
            out[s.reactor.volume] = "L"
        return out

    def parameter_values(self) -> dict[str, Float[Array, ""]]:
        """Physical value of every parameter, fixed and free."""
        params = self.structure.parameters
        free = iter(constrain_all([p for p in params if not p.fixed], self.free))
        return {p.name: jnp.asarray(p.value) if p.fixed else next(free) for p in params}

    def with_parameters(self, **values: float) -> HybridModel:
        """A copy with some free parameters set to new physical values."""
        free = list(np.asarray(self.free))
        names = [p for p in self.structure.parameters if not p.fixed]
        for k, v in values.items():
            idx = [i for i, p in enumerate(names) if p.name == k]
            if not idx:
                raise ModelError(f"{k!r} is not a free parameter of model {self.name!r}")
            free[idx[0]] = names[idx[0]].unconstrain(v)
        return eqx.tree_at(lambda m: m.free, self, jnp.asarray(free, dtype=float))

    def declared(self) -> HybridModel:
        """A copy whose free parameters are back at their declared values."""
        free = [p.unconstrain(p.value) for p in self.structure.parameters if not p.fixed]
        return eqx.tree_at(lambda m: m.free, self, jnp.asarray(free, dtype=float))

    def init_networks(self, key: PRNGKeyArray) -> HybridModel:
        """A copy with freshly initialised network weights (normalisation kept)."""
        if not self.networks:
            return self
        keys = jax.random.split(key, len(self.networks))
        nets = {
            name: NetworkFactor(net.spec, key=k, mean=net.mean, std=net.std)
            for (name, net), k in zip(self.networks.items(), keys)
        }
        return eqx.tree_at(lambda m: m.networks, self, nets)

    # ---------------------------------------------------------------- dynamics
    def initial_state(
        self,
        measured: Float[Array, " n_states"],
        constants: Float[Array, " n_constants"],
    ) -> Float[Array, " n_states"]:
        """State at t=0 from the t=0 measurements (NaN where absent) and constants."""
        s = self.structure
        env = {**self._static_env(constants)}
        out = []
        for i, (st, expr) in enumerate(zip(s.states, s.initial_exprs)):
            if expr is not None:
                out.append(jnp.asarray(expr(env), dtype=float))
            elif st.initial == "estimate":
                out.append(jnp.where(jnp.isfinite(measured[i]), measured[i], st.guess))
            else:
                out.append(measured[i])
        if s.reactor.has_volume:
            vexpr = dict(s.reactor_exprs).get("volume_initial")
            out.append(jnp.asarray(vexpr(env), dtype=float) if vexpr else measured[-1])
        return jnp.stack(out)

    def vector_field(
        self,
        t: Float[Array, ""],
        y: Float[Array, " n_states"],
        inputs: Float[Array, " n_inputs"],
        constants: Float[Array, " n_constants"],
        gains: Float[Array, " n_balanced"] | None = None,
    ) -> Float[Array, " n_states"]:
        """dy/dt at time t for state y, input values and batch constants; `gains`, a
        factor on each balanced state's reaction term (the reactor's flows as they are:
        a digital twin's rate corrections), default 1.

        Units: state units per model time unit.
        """
        s = self.structure
        env = self._env(t, y, inputs, constants)
        reaction = [b(env) for b in s.balances]
        if gains is not None:
            reaction = [g * r for g, r in zip(gains, reaction)]
        return s.reactor.balance(reaction, y, self._balanced, self._reactor_value(env))

    def observe(
        self,
        t: Float[Array, ""],
        y: Float[Array, " n_states"],
        inputs: Float[Array, " n_inputs"],
        constants: Float[Array, " n_constants"],
    ) -> Float[Array, " n_observations"]:
        """Value of each observation equation at one point (`observation_names` order)."""
        if not self.structure.observations:
            return jnp.zeros((0,))
        env = self._env(t, y, inputs, constants)
        return jnp.stack(
            [jnp.asarray(e(env), dtype=float) for e in self.structure.observation_exprs]
        )

    def apply_events(
        self,
        y: Float[Array, " n_states"],
        amounts: Float[Array, " n_events"],
        constants: Float[Array, " n_constants"],
    ) -> Float[Array, " n_states"]:
        """State just after the events of one instant.

        `amounts` holds the values of the reactor's event inputs (bolus volume,
        withdrawn volume; 0 where none). The sample is withdrawn first, then the
        bolus is mixed in.
        """
        value = self._reactor_value(self._static_env(constants))
        return self.structure.reactor.apply_events(y, amounts, self._balanced, value)

    def rates(
        self,
        t: Float[Array, ""],
        y: Float[Array, " n_states"],
        inputs: Float[Array, " n_inputs"],
        constants: Float[Array, " n_constants"],
        replace: dict[str, float] | None = None,
    ) -> dict[str, Float[Array, ""]]:
        """Value of every named rate and network factor at one point.

        `replace` sets network factors to given values first, e.g. ``{"growth": 1.0}``
        gives the mechanistic part of the rates that the network corrects.
        """
        env = self._env(t, y, inputs, constants, replace)
        return {k: env[k] for k in (*dict(self.structure.rates), *self.networks)}

    @property
    def _balanced(self) -> tuple[str, ...]:
        """Names of the balanced states (`state_names` without the reactor's volume)."""
        return tuple(st.name for st in self.structure.states)

    def _reactor_value(self, env: dict) -> Callable[[str], Float[Array, ""]]:
        """Value of a reactor expression (keyed as in its ``expressions()``) in `env`."""
        exprs = dict(self.structure.reactor_exprs)
        return lambda key: exprs[key](env)

    def _static_env(self, constants) -> dict:
        env = dict(zip(self.constant_names, constants))
        env.update(self.parameter_values())
        return env

    def _env(self, t, y, inputs, constants, replace=None) -> dict:
        env = self._static_env(constants)
        env["t"] = t
        env.update(zip(self.state_names, y))
        env.update(zip(self.input_names, inputs))
        for name, net in self.networks.items():
            env[name] = net(jnp.stack([jnp.asarray(env[x], dtype=float) for x in net.spec.inputs]))
        env.update(replace or {})
        for name, expr in self.structure.rates:
            env[name] = expr(env)
        return env
