"""Reactor modes: the flows and discrete events that the reactor adds to the balances.

All modes share one liquid balance. With inflow F_in (L/h) of concentration C_in,
outflow F_out (L/h), and an outflow F_out,i that carries species i (smaller than
F_out for species held back by a cell-retention device), concentrations obey

    dV/dt   = F_in - F_out
    dC_i/dt = r_i + (F_in * C_in,i - F_out,i * C_i - C_i * dV/dt) / V

where r_i is the user's reaction term. The modes only choose the flows:

=============  =======  ==============  ======================================
mode           F_in     F_out           F_out,i
=============  =======  ==============  ======================================
batch          0        0               0           (no volume state)
fed-batch      F        0               0
chemostat      F        F               F           (constant volume)
perfusion      F        F               F; bleed B for `retained` states
=============  =======  ==============  ======================================

Events (fed-batch, chemostat and perfusion) happen at the times an *event input*
has a row in ``inputs.csv``: a bolus of volume Vb (L) with concentrations C_b
(``C <- (C V + C_b Vb) / (V + Vb)``), and a sample withdrawal of volume Vs
(``V <- V - Vs``, concentrations unchanged). A sample taken at an event time sees
the state just before the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MODES", "Reactor", "ReactorError"]

MODES = ("batch", "fed-batch", "chemostat", "perfusion")

Expr = str | float


class ReactorError(ValueError):
    """An inconsistent reactor declaration."""


@dataclass(frozen=True)
class Reactor:
    """The reactor mode and its flows.

    Flow rates and concentrations are expressions (strings over inputs, batch
    constants and parameters, or numbers).

    Attributes:
        mode: one of ``batch``, ``fed-batch``, ``chemostat``, ``perfusion``.
        volume: name of the volume state [L] the reactor adds (not in batch mode).
        volume_initial: initial volume expression [L]; None = the t=0 measurement.
        feed_rate: inflow F [L/time].
        feed: concentration of each state in the feed (absent states: 0).
        bleed_rate: perfusion bleed B [L/time], the only outflow of `retained` states.
        retained: states held back by the cell-retention device (perfusion).
        bolus_volume: event input giving the volume of a bolus addition [L].
        bolus: concentration of each state in a bolus (default: the feed's).
        withdrawal: event input giving the volume withdrawn by sampling [L].
    """

    mode: str = "batch"
    volume: str = "V"
    volume_initial: Expr | None = None
    feed_rate: Expr | None = None
    feed: Mapping[str, Expr] = field(default_factory=dict)
    bleed_rate: Expr | None = None
    retained: tuple[str, ...] = ()
    bolus_volume: str | None = None
    bolus: Mapping[str, Expr] = field(default_factory=dict)
    withdrawal: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "feed", tuple(dict(self.feed).items()))
        object.__setattr__(self, "bolus", tuple(dict(self.bolus or self.feed).items()))
        object.__setattr__(self, "retained", tuple(self.retained))
        if self.mode not in MODES:
            raise ReactorError(f"reactor mode {self.mode!r} is not one of {', '.join(MODES)}")
        flows = self.mode != "batch"
        if not flows and (self.feed_rate is not None or self.feed or self.events):
            raise ReactorError(
                'a batch reactor has no feed, bolus or withdrawal; use mode = "fed-batch"'
            )
        if flows and self.feed_rate is None:
            raise ReactorError(f"a {self.mode} reactor needs feed_rate (an input or expression)")
        if (self.mode == "perfusion") != (self.bleed_rate is not None):
            raise ReactorError("bleed_rate is given for, and only for, a perfusion reactor")
        if self.retained and self.mode != "perfusion":
            raise ReactorError("retained states exist only in a perfusion reactor")

    @property
    def has_volume(self) -> bool:
        return self.mode != "batch"

    @property
    def events(self) -> tuple[str, ...]:
        """Names of the event inputs (bolus volume, withdrawal)."""
        return tuple(e for e in (self.bolus_volume, self.withdrawal) if e is not None)

    def expressions(self) -> dict[str, Expr]:
        """Every expression of the reactor, keyed by where it is declared."""
        out: dict[str, Expr] = {}
        for key in ("volume_initial", "feed_rate", "bleed_rate"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update({f"feed.{s}": e for s, e in self.feed})
        if self.bolus_volume is not None:
            out.update({f"bolus.{s}": e for s, e in self.bolus})
        return out
