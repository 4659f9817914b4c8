"""The pure filter step of the digital twin (see :mod:`.filter` for the equations):
the estimated system, advancing mean and covariance, the update, and the outputs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._core.model import HybridModel
from .._solve import Solver, integrate
from .._uncertainty.noise import Z95_ONE_SIDED, chi2_quantile
from .checks import TwinError, _finite, _known

__all__ = ["MAX_INFLATION", "System", "outputs", "step"]

MAX_INFLATION = 1e6  # of the predicted covariance at one update (its sd: x1000)


class System(eqx.Module):
    """What the filter estimates: s = (x, d, g), the model's states, the deviations d
    (unconstrained) of its batch-varying parameters and, if `gained`, the relative
    errors g of its balanced states' reaction terms (each times exp(g), about 1 + g),
    both constant in a batch."""

    model: HybridModel
    varying: tuple[int, ...] = eqx.field(static=True)  # indices into model.free
    gained: bool = eqx.field(static=True, default=False)

    @classmethod
    def build(cls, model: HybridModel, batch_sd: Mapping[str, float], rate_sd: float):
        """The system of `model`: its parameters with a batch sd > 0 (declared, or given
        in `batch_sd`) varying, and rate gains if `rate_sd` > 0; and the prior sd of
        each of s's entries after the states (d, then g)."""
        sd = np.array(model.batch_sd)
        free = [p.name for p in model.structure.parameters if not p.fixed]
        _finite("batch_sd", batch_sd, positive=True)
        _known("batch_sd", batch_sd, [n for n, x in zip(free, sd) if x > 0])
        if not (math.isfinite(rate_sd) and rate_sd >= 0):
            raise TwinError(f"rate_sd: {rate_sd!r} is not a number >= 0")
        sd = np.array([batch_sd.get(n, x) for n, x in zip(free, sd)])
        varying = tuple(int(k) for k in np.flatnonzero(sd > 0))
        system = cls(model, varying, rate_sd > 0)
        return system, np.concatenate([sd[list(varying)], np.full(system.n_gains, rate_sd)])

    @property
    def n_gains(self) -> int:
        return len(self.model.structure.balances) if self.gained else 0

    @property
    def names(self) -> tuple[str, ...]:
        """Reported quantities: states, observations, then the varying parameters."""
        free = [p.name for p in self.model.structure.parameters if not p.fixed]
        return self.model.variable_names + tuple(free[k] for k in self.varying)

    def _parts(self, s):
        n, k = len(self.model.state_names), len(self.varying)
        free = self.model.free.at[jnp.asarray(self.varying, dtype=int)].add(s[n : n + k])
        return eqx.tree_at(lambda m: m.free, self.model, free), s[:n]

    def field(self, t, s, u, c) -> Float[Array, " n_s"]:
        model, x = self._parts(s)
        gains = jnp.exp(s[s.shape[0] - self.n_gains :]) if self.gained else None
        dx = model.vector_field(t, x, u, c, gains)
        return jnp.concatenate([dx, jnp.zeros(s.shape[0] - x.shape[0])])

    def measure(self, t, s, u, c) -> Float[Array, " n_vars"]:
        """h(s): the states, then the observation equations."""
        model, x = self._parts(s)
        return jnp.concatenate([x, model.observe(t, x, u, c)])

    def events(self, s, amounts, c) -> Float[Array, " n_s"]:
        model, x = self._parts(s)
        return jnp.concatenate([model.apply_events(x, amounts, c), s[x.shape[0] :]])

    def report(self, t, s, u, c) -> Float[Array, " n_names"]:
        model, _ = self._parts(s)
        values = model.parameter_values()
        varying = [jnp.atleast_1d(values[n]) for n in self.names[len(self.model.variable_names) :]]
        return jnp.concatenate([self.measure(t, s, u, c), *varying])


def _advance(system: System, q, solver: Solver, s, P, t0, t1, u, c):
    """Mean and covariance from t0 to t1 under inputs u held (see the module)."""

    def field(t, state, t_end):
        s, P = state
        fs, jvp = jax.linearize(lambda y: system.field(t, y, u, c), s)
        A = jax.vmap(jvp, out_axes=1)(jnp.eye(s.shape[0]))
        return fs, A @ P + P @ A.T + jnp.diag((q * s) ** 2)

    # one segment; the filter differentiates the field, never the solve: forward mode
    # keeps no checkpoints
    (s, P), ok = integrate(field, (s, P), jnp.stack([t0, t1]), solver, adjoint=dfx.ForwardMode())
    return s[0], P[0], ok[0]


@eqx.filter_jit
def step(
    system: System,
    q: Float[Array, " n_s"],
    solver: Solver,
    s: Float[Array, " n_s"],
    P: Float[Array, "n_s n_s"],
    t0,
    t1,
    u_old: Float[Array, " n_inputs"],
    u_new: Float[Array, " n_inputs"],
    c: Float[Array, " n_constants"],
    z: Float[Array, " n_vars"],
    mask: Bool[Array, " n_vars"],
    r: Float[Array, " n_vars"],
    e: Float[Array, " n_vars"],
    amounts: Float[Array, " n_events"],
    inflates: Bool[Array, " n_s"],
):
    r"""One filter step: advance to t1 under u_old, correct with the measured entries of
    z (sd r, relative model error e), then apply the events. If the sampled states'
    innovations are beyond their 95% bound, the predicted covariance of the entries
    that `inflates` marks is first inflated until they are at it (:func:`_inflate`;
    none marked: the textbook filter).

    Returns:
        (s, P, ok, nis, inflation, nu, var): the corrected mean and covariance, whether
        the step succeeded, the normalised innovation squared :math:`\nu^T S^{-1} \nu`
        of the measured entries before any inflation (innovation :math:`\nu = z - h(s)`;
        chi-square with as many degrees of freedom as values measured when the filter is
        consistent), the factor P was inflated by (1: none), and per variable the
        innovation :math:`\nu` (0 where not measured) and its predicted variance
        :math:`S_{ii}` before any inflation.

    Jitted once per model structure: twins of the same model share the compile."""
    s, P, ok = _advance(system, q, solver, s, P, t0, t1, u_old, c)
    h = lambda y: system.measure(t1, y, u_new, c)  # noqa: E731
    pred, H = h(s), jax.jacfwd(h)(s)
    H = jnp.where(mask[:, None], H, 0.0)
    R = jnp.diag(jnp.where(mask, r**2 + (e * pred) ** 2, 1.0))
    nu = jnp.where(mask, z - pred, 0.0)
    S = H @ P @ H.T + R
    nis = nu @ jnp.linalg.solve(S, nu)
    var = jnp.diag(S)
    sampled = mask & (jnp.arange(mask.shape[0]) < len(system.model.state_names))
    inflation, P = _inflate(nu, H, P, R, sampled, inflates)
    S = H @ P @ H.T + R
    K = jnp.linalg.solve(S, H @ P).T
    I_KH = jnp.eye(s.shape[0]) - K @ H
    s = s + K @ nu
    s = s.at[: len(system.model.state_names)].max(0.0)  # states are never negative
    P = I_KH @ P @ I_KH.T + K @ R @ K.T
    G = jax.jacfwd(lambda y: system.events(y, amounts, c))(s)
    s, P = system.events(s, amounts, c), G @ P @ G.T
    P = (P + P.T) / 2
    ok = ok & jnp.all(jnp.isfinite(s)) & jnp.all(jnp.isfinite(P))
    return s, P, ok, nis, inflation, nu, var


def _inflated(P, inflates, lam):
    """P with the rows and columns that `inflates` marks scaled by sqrt(lambda): their
    variances by lambda, their covariances with the rest by sqrt(lambda) (still a
    covariance: D P D with D diagonal)."""
    d = jnp.where(inflates, jnp.sqrt(lam), 1.0)
    return d[:, None] * P * d[None, :]


def _inflate(nu, H, P, R, sampled, inflates, iterations: int = 40):
    r"""Covariance matching at one update: when the NIS of the sampled states'
    innovations lies beyond the 95% quantile of chi-square with k = (number sampled)
    degrees of freedom (Wilson-Hilferty,
    :func:`~hybridxfer._uncertainty.noise.chi2_quantile`), the smallest
    :math:`\lambda \ge 1` (at most :data:`MAX_INFLATION`) that brings
    :math:`\nu_s^T (H_s P_\lambda H_s^T + R_s)^{-1} \nu_s` to it, with
    :math:`P_\lambda` the covariance inflated where `inflates` marks
    (:func:`_inflated`), each sampled state's variance first raised to at least its
    sample's (R): a model that a sample proves wrong is not more precise than the
    sample (a variance the dynamics had contracted to 0, as a depleted substrate's,
    would not inflate at all). A model that is off on this batch (a source model on a
    related process, say) then widens the uncertainty of its states and batch
    parameters as far as the samples show, and follows them. The reactor volume does not
    inflate: it follows the recorded flows (inflated, its covariance with the
    concentrations let one surprising sample move it to 0). Observation equations
    (OUR...) do not inflate either: their mismatch may be the equation's, which their
    model error counts. Bisection on log lambda.

    Returns:
        (lambda, P_lambda): 1 and P when the samples are within the bound, or no
        sampled state may inflate."""
    k = jnp.sum(sampled)
    bound = chi2_quantile(jnp.maximum(k, 1), Z95_ONE_SIDED)
    both = sampled[:, None] & sampled[None, :]
    nu = jnp.where(sampled, nu, 0.0)

    def nis(P):
        S = H @ P @ H.T + R
        return nu @ jnp.linalg.solve(jnp.where(both, S, jnp.eye(nu.shape[0])), nu)

    m = min(sampled.shape[0], inflates.shape[0])  # sampled: states only, the first entries
    floor = jnp.where(sampled[:m] & inflates[:m], jnp.diag(R)[:m] - jnp.diag(P)[:m], 0.0)
    base = P + jnp.diag(jnp.zeros(P.shape[0]).at[:m].set(jnp.maximum(floor, 0.0)))

    def halve(_, interval):
        lo, hi = interval
        mid = (lo + hi) / 2
        above = nis(_inflated(base, inflates, jnp.exp(mid))) > bound
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    _, hi = jax.lax.fori_loop(0, iterations, halve, (0.0, math.log(MAX_INFLATION)))
    rejected = (k > 0) & jnp.any(sampled[:m] & inflates[:m]) & (nis(P) > bound)
    lam = jnp.where(rejected, jnp.exp(hi), 1.0)
    return lam, jnp.where(rejected, _inflated(base, inflates, lam), P)


@eqx.filter_jit
def outputs(system: System, s, P, t, u, c):
    """Mean and sd of every reported quantity (:attr:`System.names`), linearised."""
    h = lambda y: system.report(t, y, u, c)  # noqa: E731
    H = jax.jacfwd(h)(s)
    return h(s), jnp.sqrt(jnp.clip(jnp.einsum("ij,jk,ik->i", H, P, H), 0.0))
