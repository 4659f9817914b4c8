"""Reactor modes: the flows and discrete events that the reactor adds to the balances.

All modes share one liquid balance. With inflow F_in (L/h) of concentration C_in,
outflow F_out (L/h), and an outflow F_out,i that carries species i (smaller than
F_out for species held back by a cell-retention device), concentrations obey

    dV/dt   = F_in - F_out
    dC_i/dt = r_i + (F_in * C_in,i - F_out,i * C_i - C_i * dV/dt) / V

where r_i is the user's reaction term. The modes only choose the flows:

==================  =======  ==============  ======================================
mode                F_in     F_out           F_out,i
==================  =======  ==============  ======================================
:class:`Batch`      0        0               0           (no volume state)
:class:`FedBatch`   F        0               0
:class:`Chemostat`  F        F               F           (constant volume)
:class:`Perfusion`  F        F               F; bleed B for `retained` states
==================  =======  ==============  ======================================

Events (fed-batch, chemostat and perfusion) happen at the times an *event input*
has a row in ``inputs.csv``: a bolus of volume Vb (L) with concentrations C_b
(``C <- (C V + C_b Vb) / (V + Vb)``), and a sample withdrawal of volume Vs
(``V <- V - Vs``, concentrations unchanged). A sample taken at an event time sees
the state just before the event.

A reactor declares its flow rates and concentrations as expressions (strings over
inputs, batch constants and parameters, or numbers; :meth:`AbstractReactor.expressions`);
the model compiles them and hands their values to :meth:`AbstractReactor.balance` and
:meth:`AbstractReactor.apply_events` through a lookup ``value(key)``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = [
    "AbstractFlowReactor",
    "AbstractReactor",
    "Batch",
    "Chemostat",
    "FedBatch",
    "Perfusion",
    "ReactorError",
]

Expr = str | float
Value = Callable[[str], Float[Array, ""]]


class ReactorError(ValueError):
    """An inconsistent reactor declaration."""


def _pairs(mapping: Mapping[str, Expr] | Sequence[tuple[str, Expr]]) -> tuple:
    return tuple(dict(mapping).items())


class AbstractReactor(eqx.Module):
    """A reactor mode: the flows and events it adds to the user's reaction terms."""

    @property
    @abc.abstractmethod
    def has_volume(self) -> bool:
        """Whether the reactor adds a volume state [L] (the last state)."""

    @property
    @abc.abstractmethod
    def events(self) -> tuple[str, ...]:
        """Names of the event inputs (bolus volume, withdrawal)."""

    @property
    @abc.abstractmethod
    def species(self) -> tuple[str, ...]:
        """The states the reactor names (feed concentrations, retained states)."""

    @abc.abstractmethod
    def expressions(self) -> dict[str, Expr]:
        """Every expression of the reactor, keyed by where it is declared:
        ``volume_initial``, ``feed_rate``, ``bleed_rate``, ``feed.S``, ``bolus.S``."""

    @abc.abstractmethod
    def balance(
        self,
        reaction: Sequence[Float[Array, ""]],
        y: Float[Array, " n_states"],
        states: Sequence[str],
        value: Value,
    ) -> Float[Array, " n_states"]:
        """dy/dt: the reaction terms plus the reactor's flows (see the module).

        Args:
            reaction: r_i of each balanced state [state unit / time].
            y: the state vector (balanced states, then the volume if any).
            states: names of the balanced states.
            value: the value of one of :meth:`expressions` at this point.

        Returns:
            dy/dt, shape of `y`.
        """

    @abc.abstractmethod
    def apply_events(
        self,
        y: Float[Array, " n_states"],
        amounts: Float[Array, " n_events"],
        states: Sequence[str],
        value: Value,
    ) -> Float[Array, " n_states"]:
        """The state just after the events of one instant.

        Args:
            y: the state just before.
            amounts: the value of each event input (:attr:`events` order; 0 where none).
            states: names of the balanced states.
            value: the value of one of :meth:`expressions` (bolus concentrations).

        Returns:
            The state after the sample is withdrawn, then the bolus mixed in.
        """


class Batch(AbstractReactor):
    """A closed reactor: no flows, no volume state, no events."""

    @property
    def has_volume(self) -> bool:
        return False

    @property
    def events(self) -> tuple[str, ...]:
        return ()

    @property
    def species(self) -> tuple[str, ...]:
        return ()

    def expressions(self) -> dict[str, Expr]:
        return {}

    def balance(self, reaction, y, states, value):
        return jnp.stack([jnp.asarray(r, dtype=float) for r in reaction])

    def apply_events(self, y, amounts, states, value):
        return y


class AbstractFlowReactor(AbstractReactor):
    """A reactor with a liquid volume, an inflow F [L/time], and bolus and withdrawal
    events.

    Attributes:
        feed_rate: inflow F [L/time].
        feed: concentration of each state in the feed (absent states: 0).
        volume: name of the volume state [L] the reactor adds.
        volume_initial: initial volume expression [L]; None = the t=0 measurement.
        bolus_volume: event input giving the volume of a bolus addition [L].
        bolus: concentration of each state in a bolus (None or empty: the feed's).
        withdrawal: event input giving the volume withdrawn by sampling [L].
    """

    feed_rate: Expr = eqx.field(kw_only=True)
    feed: tuple[tuple[str, Expr], ...] = eqx.field(default=(), converter=_pairs, kw_only=True)
    volume: str = eqx.field(default="V", kw_only=True)
    volume_initial: Expr | None = eqx.field(default=None, kw_only=True)
    bolus_volume: str | None = eqx.field(default=None, kw_only=True)
    bolus: tuple[tuple[str, Expr], ...] | None = eqx.field(
        default=None, converter=lambda b: _pairs(b) if b else None, kw_only=True
    )
    withdrawal: str | None = eqx.field(default=None, kw_only=True)

    @abc.abstractmethod
    def outflows(
        self, f_in: Float[Array, ""], value: Value
    ) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
        """F_out, and F_out,i of the states whose outflow is not F_out [L/time]."""

    @abc.abstractmethod
    def outflow_expressions(self) -> dict[str, Expr]:
        """The expressions of the outflows, keyed as in :meth:`expressions`."""

    @property
    def has_volume(self) -> bool:
        return True

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(e for e in (self.bolus_volume, self.withdrawal) if e is not None)

    @property
    def bolus_concentrations(self) -> tuple[tuple[str, Expr], ...]:
        """Concentration of each state in a bolus: `bolus`, or the feed's."""
        return self.feed if self.bolus is None else self.bolus

    def expressions(self) -> dict[str, Expr]:
        out: dict[str, Expr] = {}
        if self.volume_initial is not None:
            out["volume_initial"] = self.volume_initial
        out["feed_rate"] = self.feed_rate
        out.update(self.outflow_expressions())
        out.update({f"feed.{s}": e for s, e in self.feed})
        if self.bolus_volume is not None:
            out.update({f"bolus.{s}": e for s, e in self.bolus_concentrations})
        return out

    def balance(self, reaction, y, states, value):
        V = y[-1]
        f_in = value("feed_rate")
        f_out, f_out_of = self.outflows(f_in, value)
        dV = f_in - f_out
        feed = {s: value(f"feed.{s}") for s, _ in self.feed}
        out = [
            r + (f_in * feed.get(s, 0.0) - f_out_of.get(s, f_out) * c - c * dV) / V
            for s, r, c in zip(states, reaction, y[:-1])
        ]
        out.append(dV)
        return jnp.stack([jnp.asarray(o, dtype=float) for o in out])

    def apply_events(self, y, amounts, states, value):
        if not self.events:
            return y
        amount = dict(zip(self.events, amounts))
        V = y[-1] - amount.get(self.withdrawal, 0.0)
        Vb = amount.get(self.bolus_volume, 0.0)
        bolus = (
            {s: value(f"bolus.{s}") for s, _ in self.bolus_concentrations}
            if self.bolus_volume is not None
            else {}
        )
        c = jnp.stack(
            [(y[i] * V + Vb * bolus.get(s, 0.0)) / (V + Vb) for i, s in enumerate(states)]
        )
        return jnp.concatenate([c, jnp.stack([V + Vb])])


class FedBatch(AbstractFlowReactor):
    """Fed-batch: inflow F, no outflow; the volume grows (``dV/dt = F``)."""

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.feed)

    def outflows(self, f_in, value):
        return 0.0, {}

    def outflow_expressions(self) -> dict[str, Expr]:
        return {}


class Chemostat(AbstractFlowReactor):
    """Chemostat: outflow equal to the inflow F; constant volume."""

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.feed)

    def outflows(self, f_in, value):
        return f_in, {}

    def outflow_expressions(self) -> dict[str, Expr]:
        return {}


class Perfusion(AbstractFlowReactor):
    """Perfusion: outflow equal to the inflow F (harvest through a cell-retention
    device, plus a bleed); the `retained` states leave only with the bleed B.

    Attributes:
        bleed_rate: the bleed B [L/time], the only outflow of `retained` states.
        retained: states held back by the cell-retention device.
    """

    bleed_rate: Expr = eqx.field(kw_only=True)
    retained: tuple[str, ...] = eqx.field(default=(), converter=tuple, kw_only=True)

    @property
    def species(self) -> tuple[str, ...]:
        return (*(s for s, _ in self.feed), *self.retained)

    def outflow_expressions(self) -> dict[str, Expr]:
        return {"bleed_rate": self.bleed_rate}

    def outflows(self, f_in, value):
        bleed = value("bleed_rate")
        return f_in, {s: bleed for s in self.retained}
