"""Toy models shared by the tests (import as ``from tests.helpers import monod_model``)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import pandas as pd

import hybridxfer as hx


def monod_model(
    parameters: Sequence[hx.Parameter],
    *,
    name: str = "monod",
    network_input: str | None = None,
    reactor: hx.AbstractReactor | None = None,
    inputs: Sequence[hx.Input] = (),
    constants: Sequence[hx.Constant] = (),
) -> hx.HybridModel:
    """Monod growth of biomass X [g/L] on substrate S [g/L] with yield Y:
    ``mu = mu_max * S / (K + S)`` (times a network factor ``g`` of `network_input`,
    4 hidden units, if given), ``X' = mu X``, ``S' = -mu / Y X``.

    Args:
        parameters: declarations of ``mu_max`` [1/h], ``K`` [g/L] and ``Y`` [g/g].
        name: the model's name.
        network_input: the state read by the network factor ``g``; None: no network.
        reactor: the reactor (default batch).
        inputs: the model's inputs (e.g. a feed rate).
        constants: the model's batch constants (e.g. a feed concentration).

    Returns:
        The model, its network (if any) initialised with ``PRNGKey(0)``.
    """
    networks = [hx.Network("g", inputs=(network_input,), hidden=(4,))] if network_input else []
    return hx.HybridModel.build(
        name=name,
        states=[hx.State("X", "g/L"), hx.State("S", "g/L")],
        inputs=inputs,
        constants=constants,
        parameters=parameters,
        networks=networks,
        rates={"mu": "mu_max * monod(S, K)" + (" * g" if networks else "")},
        balances={"X": "mu * X", "S": "-mu / Y * X"},
        reactor=reactor,
        key=jax.random.PRNGKey(0) if networks else None,
    )


def grows_model(k: float) -> hx.HybridModel:
    """X grows at rate k [1/h] in a fed-batch fed at F with medium of X content Xf
    (X is diluted by the feed: dX/dt = k X - F/V (X - Xf))."""
    return hx.HybridModel.build(
        name="grows",
        states=[hx.State("X", "g/L")],
        inputs=[hx.Input("F", "L/h")],
        constants=[hx.Constant("Xf", "g/L")],
        parameters=[hx.Parameter("k", k, "1/h")],
        rates={},
        balances={"X": "k * X"},
        reactor=hx.FedBatch(feed_rate="F", feed={"X": "Xf"}),
    )


def fit_holding(model: hx.HybridModel, calibration=None) -> hx.FitResult:
    """A FitResult of `model` as it is, holding the given calibration table (None: no
    residuals, so a twin made from it takes its default noise)."""
    return hx.FitResult(
        model=model,
        members=(model,),
        initial=pd.DataFrame(columns=["batch", "variable", "value"]),
        history=pd.DataFrame(columns=["step", "member", "train", "valid"]),
        scores=(0.0,),
        config=hx.FitConfig(),
        calibration=calibration,
        table=pd.DataFrame(),
    )
