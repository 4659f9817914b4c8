"""Plans: what a fit may change, part by part (the mechanism behind transfer).

Which observations train and which score a member is not a plan's concern: see
:class:`~hybridxfer.Validation`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["NETWORK_MODES", "Plan"]

NETWORK_MODES = ("relearn", "tune", "last-layer", "frozen")


@dataclass(frozen=True)
class Plan:
    """What a fit may change. The default, ``Plan()``, is an ordinary fit: every free
    parameter is fitted from its starting value and every network is learned afresh.

    Attributes:
        parameters: names of the free parameters that are fitted (None: all); the
            others keep the values the model has.
        networks: per network, ``"relearn"`` (new weights, trained), ``"tune"``
            (trained from the current weights), ``"last-layer"`` (only the output
            layer trained) or ``"frozen"``. Networks not named: ``"relearn"``.
        anchor: L2-SP strength pulling tuned parts toward their starting values:
            ``anchor * (mean_k ((z_k - z0_k) / s_k)^2 + mean_w (w - w0)^2)`` over the
            fitted parameters (unconstrained z, scale s from `anchor_sd`, default 1)
            and the weights of tuned networks.
        anchor_sd: per parameter, the standard deviation of z in the source fit, so
            well-determined parameters are held more firmly (uncertainty-aware).
        joint: other processes fitted together with the primary one (multitask):
            their train and valid batches count in training with `joint_weight`;
            process-specific parameters take one value per process.
        joint_weight: weight of a joint process's observation relative to the primary's.
        learning_rate: factor on the fit's learning rate for this plan (e.g. 0.2 to
            fine-tune gently).
        from_declared: start the fitted parameters from the values declared in the
            model (a fit from scratch) instead of the model's current values.
    """

    parameters: tuple[str, ...] | None = None
    networks: Mapping[str, str] = field(default_factory=dict)
    anchor: float = 0.0
    anchor_sd: Mapping[str, float] = field(default_factory=dict)
    joint: tuple[str, ...] = ()
    joint_weight: float = 0.3
    learning_rate: float = 1.0
    from_declared: bool = False

    def __post_init__(self):
        object.__setattr__(self, "networks", dict(self.networks))
        object.__setattr__(self, "anchor_sd", dict(self.anchor_sd))
        object.__setattr__(self, "joint", tuple(self.joint))
        if self.parameters is not None:
            object.__setattr__(self, "parameters", tuple(self.parameters))
        bad = {k: v for k, v in self.networks.items() if v not in NETWORK_MODES}
        if bad:
            raise ValueError(f"network mode(s) {bad} not one of {', '.join(NETWORK_MODES)}")
        if self.anchor < 0 or self.joint_weight <= 0:
            raise ValueError("anchor must be >= 0 and joint_weight > 0")

    def network_mode(self, name: str) -> str:
        return self.networks.get(name, "relearn")

    def fits_parameter(self, name: str) -> bool:
        return self.parameters is None or name in self.parameters
