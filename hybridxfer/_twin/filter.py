"""Digital twin: a continuous-discrete extended Kalman filter around a hybrid model.

Between updates, the state mean x and covariance P follow the model,

    dx/dt = f(x, u, c, t),        dP/dt = A P + P A^T + Q(x),    A = df/dx,

with the inputs u held from the last update (zero-order hold) and process noise
``Q(x) = diag((q_i x_i)^2)``: each state drifts randomly by a fraction q_i of its
value per sqrt(time unit). At an update, the measured variables z (states, e.g. an
offline sample, or observation equations, e.g. OUR) correct the state:

    H = dh/dx,  S = H P H^T + R,  K = P H^T S^-1,
    x <- x + K (z - h(x)),   P <- (I - K H) P (I - K H)^T + K R K^T   (Joseph form),

with ``R = diag(sd^2 + (e h(x))^2 max(1, tau/dt))``: the sensor's noise sd plus, for a
variable given a relative model error e (the observation equation's mismatch, say),
that fraction of its predicted value, counted max(1, tau/dt) times over when the error
persists for a correlation time tau and the variable was last measured dt ago (each
reading then tells only dt/tau of an independent one). The normalised innovation
squared ``NIS = (z - h(x))^T S^-1 (z - h(x))`` of each update is kept: chi-square with
as many degrees of freedom as values measured when the bands are right. States are
concentrations or volumes, so the corrected mean and the bands' lower ends are
clipped at 0. An adaptive twin (the default) inflates the predicted covariance of
the states and batch parameters, ``P <- D P D`` with ``D = diag(sqrt(lambda))`` (1 for
the reactor volume, which follows the recorded flows) and the smallest lambda >= 1 that
brings the NIS of the update's sampled states to its 95% chi-square quantile, when it
lies beyond it: a model that is off on this batch then follows the samples instead of
trusting its own confident, wrong state (covariance matching, one update at a time,
each sampled state's variance first raised to at least its sample's; observation
equations, whose mismatch their model error counts, do not inflate). It also raises a
sampled state's process noise once the batch's samples show it too small
(:mod:`.state`), so that the band does not shrink back between samples.
:meth:`DigitalTwin.from_fit` sets e, tau, q and the batch sd from a
fit's residuals (:mod:`hybridxfer._twin.calibrate`). Events (sample withdrawal, bolus) at an update
act after its measurements, as in a simulation: ``x <- g(x)``, ``P <- G P G^T``.

Parameters declared with a ``batch_sd`` (they vary from batch to batch) are
estimated along: the filter's state is s = (x, d), with d each one's deviation from
the fitted value (prior sd ``batch_sd``, constant within the batch). OUR, for one,
then tells this batch's growth rate apart from its cell density.

A sample that arrives late (``sample_time`` before the twin's time) is put in its
place: the twin goes back to its estimate just before that time and replays
everything after it, so the result equals that of a sample that came in time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._core.model import HybridModel
from .._fit.config import FitResult
from .._solve import TWIN, Solver
from .calibrate import noise_from_fit
from .checks import TwinError, TwinWarning, _consistency, _finite, _known
from .state import Learned, Record, Snapshot
from .step import System, outputs, step
from .values import planned, refusals

__all__ = ["DigitalTwin", "TwinError", "TwinWarning"]

Z95 = 1.959963984540054
PROCESS_NOISE = 0.02  # q of a state whose residuals do not tell it [1/sqrt(time unit)]
RATE_SD = 0.1  # from_fit: prior relative error of each reaction term in a new batch


class DigitalTwin:
    r"""An online state estimator (soft sensor) for one running batch.

    Args:
        model: the (fitted) hybrid model; its observation equations link states to
            online signals.
        initial: value of each state at `time` whose initial value the model does
            not declare (e.g. ``{"Xv": 0.3, "Glc": 40, "Lac": 1, "V": 1.0}``).
        inputs: value of every continuous input at `time` (e.g. feed rate,
            temperature); later values come with :meth:`update`.
        constants: the batch constants.
        initial_sd: standard deviation of the initial states [state units]
            (default: 10% of each value; 1% for the reactor volume).
        measurement_sd: standard deviation of each measured variable [its unit]
            (default: an observation's declared ``sd``); needed for every variable
            the twin is given, unless the update passes it.
        model_error: relative standard deviation of the model's error in a measured
            variable (e.g. 0.2 for an observation equation that misses OUR by 20%,
            as its fit's residuals tell: :func:`hybridxfer.relative_rmse`), added to
            the measurement sd in quadrature (see the module). Without it the filter
            trusts a precise sensor as though the model explained it exactly.
        model_error_time: correlation time tau of a variable's model error [model
            time unit]: a model that misses a signal by the same fraction for hours
            tells less with each reading than independent errors would. An update
            that measures the variable dt after its previous measurement counts its
            model error as :math:`e^2 \max(1, \tau/dt)` (each reading is worth dt/tau
            of an independent one). Default: uncorrelated.
        process_noise: q, relative drift of each state per sqrt(time unit), one
            number for every state but the reactor volume (which follows the
            recorded flows: 0), or per state.
        batch_sd: prior sd of a batch-varying parameter's deviation in this batch
            [unconstrained units, about relative], replacing its declared
            ``batch_sd`` (e.g. the spread of the fitted batches' values).
        rate_sd: prior sd of the relative error of each balanced state's reaction
            term in this batch (each estimated along, constant in the batch: a model
            whose growth is 10% too fast on this batch is then corrected by the
            samples, rather than pulled back to them after each); 0: none.
        time: the starting time [model time unit].
        solver: integration of the mean and covariance between updates.
        adaptive: when an update's sampled states lie beyond the 95% chi-square bound
            of their predicted covariance (the model is off on this batch: a source
            model on a related process, say), inflate the predicted covariance until
            they lie at it, so that the twin follows the samples and its bands widen
            (see :meth:`innovations`), and raise a sampled state's process noise once
            the batch's samples show it too small (:mod:`.state`); False: the
            textbook filter.

    Attributes:
        noise: the noise levels in use: ``model_error`` (e per variable),
            ``process_noise`` (q per state) and ``rate_sd``.

    Raises:
        TwinError: for missing or unknown names or non-finite values.
    """

    def __init__(
        self,
        model: HybridModel,
        *,
        initial: Mapping[str, float],
        inputs: Mapping[str, float] = {},
        constants: Mapping[str, float] = {},
        initial_sd: Mapping[str, float] | None = None,
        measurement_sd: Mapping[str, float] = {},
        model_error: Mapping[str, float] | pd.Series | None = None,
        model_error_time: Mapping[str, float] | None = None,
        process_noise: float | Mapping[str, float] = PROCESS_NOISE,
        batch_sd: Mapping[str, float] | None = None,
        rate_sd: float = 0.0,
        time: float = 0.0,
        solver: Solver = TWIN,
        adaptive: bool = True,
    ):
        self.model = model
        model_error = {} if model_error is None else dict(model_error)  # also a Series
        states, variables = model.state_names, model.variable_names
        _finite("initial", initial)
        _finite("inputs", inputs)
        _finite("constants", constants)
        _finite("measurement_sd", measurement_sd, positive=True)
        _finite("model_error", model_error, positive=True)
        tau = dict(model_error_time or {})
        _finite("model_error_time", tau, positive=True)
        _known("model_error_time", tau, variables)
        _known("initial", initial, states)
        _known("inputs", inputs, model.input_names)
        _known("constants", constants, model.constant_names)
        _known("measurement_sd", measurement_sd, variables)
        _known("model_error", model_error, variables)
        for what, given, needed in (
            ("inputs", inputs, model.input_names),
            ("constants", constants, model.constant_names),
        ):
            if missing := [n for n in needed if n not in given]:
                raise TwinError(f"{what}: no value for {missing}")
        self._c = jnp.asarray([constants[n] for n in model.constant_names], dtype=float)
        measured = jnp.asarray([initial.get(s, np.nan) for s in states], dtype=float)
        x0 = np.asarray(model.initial_state(measured, self._c))
        if missing := [s for s, v in zip(states, x0) if not np.isfinite(v)]:
            raise TwinError(f"initial: no value for state(s) {missing}")
        volume = model.structure.reactor.volume if model.structure.reactor.has_volume else None
        relative = {s: 0.01 if s == volume else 0.1 for s in states}
        sd0 = {s: relative[s] * abs(v) for s, v in zip(states, x0)} | dict(initial_sd or {})
        _known("initial_sd", sd0, states)
        _finite("initial_sd", sd0)
        declared = {o.name: o.sd for o in model.structure.observations if o.sd is not None}
        self.measurement_sd = {**declared, **measurement_sd}
        self._e = np.array([model_error.get(v, 0.0) for v in variables], dtype=float)
        self._tau = np.array([tau.get(v, 0.0) for v in variables], dtype=float)
        if isinstance(process_noise, Mapping):
            _known("process_noise", process_noise, states)
            q = [process_noise.get(s, 0.0) for s in states]
        else:
            q = [0.0 if s == volume else process_noise for s in states]
        self.noise = dict(
            model_error={v: float(x) for v, x in zip(variables, self._e) if x > 0},
            model_error_time={v: float(x) for v, x in zip(variables, self._tau) if x > 0},
            process_noise={s: float(x) for s, x in zip(states, q)},
            rate_sd=float(rate_sd),
        )
        self._system, sd_extra = System.build(model, dict(batch_sd or {}), rate_sd)
        extra, gains = len(sd_extra), self._system.n_gains  # s = (x, d, g)
        self._q = np.asarray(q + [0.0] * extra, dtype=float)
        self._learns = np.array([adaptive and s != volume for s in states])  # .state
        # inflated by surprising samples (.step): the states but the volume, and the
        # batch parameters (the gains keep their prior: inflated, they made the solve stiff)
        self._inflates = np.array([*self._learns, *[adaptive] * (extra - gains), *[False] * gains])
        self._solver = solver
        sd = np.concatenate([[sd0[s] for s in states], sd_extra])
        start = Snapshot(
            float(time),
            jnp.concatenate([jnp.asarray(x0), jnp.zeros(extra)]),
            jnp.diag(jnp.asarray(sd, dtype=float) ** 2),
            np.asarray([inputs[n] for n in model.input_names], dtype=float),
            np.full(len(variables), float(time)),
            Learned.nothing(len(states)),
        )
        self._records: list[Record] = []
        self._snapshots: list[Snapshot] = [start]

    @classmethod
    def from_fit(
        cls,
        result: FitResult,
        *,
        initial: Mapping[str, float],
        model_error: Mapping[str, float] | None = None,
        process_noise: float | Mapping[str, float] | None = None,
        **twin,
    ) -> DigitalTwin:
        """A twin of a fit's model whose noise levels come from the fit's residuals
        (:attr:`FitResult.calibration`) and batches, as :mod:`hybridxfer._twin.calibrate`
        describes: each observation's relative model error e and its correlation time,
        each measured state's process noise q (an unmeasured state keeps 0.02 per
        sqrt(time unit)), and the batch sd of the batch-varying parameters; each
        reaction term's relative error is estimated along (``rate_sd`` 0.1 unless
        given: a fit's residuals do not tell how far a new batch's rates are off). For a fit
        whose predictions are its members' weighted mean (a transfer's ``auto``), the
        twin runs its :attr:`~hybridxfer.FitResult.model`, with the levels of the
        mean's residuals.

        Args:
            result: a fit (:func:`hybridxfer.fit`, :func:`hybridxfer.load_fit`) or a
                transfer (its ``fit``).
            initial: as for :class:`DigitalTwin`.
            model_error: relative model errors given explicitly; they replace the
                fit's for the variables they name.
            process_noise: q given explicitly (one number or per state); replaces the
                fit's.
            twin: further arguments of :class:`DigitalTwin` (``inputs``,
                ``constants``, ``measurement_sd``...).
        """
        result = getattr(result, "fit", result)  # a TransferResult holds its fit
        twin |= noise_from_fit(result, model_error, process_noise, PROCESS_NOISE, twin)
        twin.setdefault("rate_sd", RATE_SD)
        return cls(result.model, initial=initial, **twin)

    # ------------------------------------------------------------------ streaming
    @property
    def time(self) -> float:
        """Time of the latest update [model time unit]."""
        return self._snapshots[-1].time

    def update(
        self,
        time: float,
        values: Mapping[str, float],
        *,
        sample_time: float | None = None,
        sd: Mapping[str, float] = {},
    ) -> None:
        """Take in the signals that arrived at `time`.

        `values` may hold any subset of: measured variables (states, observations),
        continuous inputs (held from then on) and event inputs (amounts at that
        instant). A sample taken earlier than it arrives gives its `sample_time`; if
        that lies before the twin's time, the twin replays from it.

        Raises:
            TwinError: `time` before the twin's time, a value :meth:`refusals` refuses
                (an unknown name, a value that is not finite or outside its physical
                range, a bad sd, a variable without one), or a failed solve; the twin is
                then unchanged.
        """
        if not math.isfinite(time) or time < self.time:
            raise TwinError(
                f"update at time {time!r} is out of order: the twin is at time {self.time:g} "
                "(give a late sample's time as sample_time=)"
            )
        at = time if sample_time is None else sample_time
        if not math.isfinite(at) or at < self._snapshots[0].time or at > time:
            raise TwinError(
                f"sample_time {sample_time!r} must lie between the start "
                f"({self._snapshots[0].time:g}) and the arrival time {time:g}"
            )
        if refused := self.refusals(values, sd):
            raise TwinError("update: " + "; ".join(refused.values()))
        record = Record(float(at), dict(values), dict(sd))
        k = bisect.bisect_right([r.time for r in self._records], record.time)
        records = [record, *self._records[k:]]
        snapshots = self._snapshots[: k + 1]
        for r in records:  # all in local lists: an error leaves the twin as it was
            snapshots.append(self._apply(snapshots[-1], r))
        self._records = self._records[:k] + records
        self._snapshots = snapshots

    def refusals(self, values: Mapping[str, float], sd: Mapping[str, float] = {}) -> dict[str, str]:
        """The values (and sds) of an update that the twin refuses, each name with why
        (:func:`hybridxfer._twin.values.refusals`); empty if the update is acceptable.
        A stream's replay applies the rest of an arrival (:func:`~hybridxfer.replay`)."""
        return refusals(self.model, self.measurement_sd, values, sd)

    def estimate(self) -> pd.DataFrame:
        """The current estimate: columns ``time, variable, mean, sd, lower95, upper95``
        for every state and observation, and this batch's value of every batch-varying
        parameter (a normal 95% band)."""
        return self._frame(self._snapshots[-1])

    def history(self) -> pd.DataFrame:
        """The filtered estimate after each update in time order, late samples in
        their place (what a twin given every sample in time would have shown); same
        columns as :meth:`estimate`. For the estimates as known at each arrival, call
        :meth:`estimate` after each update."""
        return pd.concat([self._frame(s) for s in self._snapshots], ignore_index=True)

    def innovations(self) -> pd.DataFrame:
        r"""The consistency record of each update in time order (late samples in their
        place): columns ``time``, ``measured`` (the number m of measured values) and
        ``nis``, the normalised innovation squared :math:`\nu^T S^{-1} \nu` of the
        innovation :math:`\nu = z - h(x)` against its predicted covariance S (see the
        module), before any inflation; ``inflation``, the factor an adaptive twin
        inflated the predicted covariance by (1: none). For a consistent filter ``nis``
        is chi-square with m degrees of freedom: mean m."""
        snaps = self._snapshots[1:]
        return pd.DataFrame(
            dict(
                time=[s.time for s in snaps],
                measured=[s.measured for s in snaps],
                nis=[s.nis for s in snaps],
                inflation=[s.inflation for s in snaps],
            )
        )

    def consistency(self, last: int | None = None) -> dict:
        """Summary of :meth:`innovations` (over the `last` updates with measurements,
        default all): ``updates``, ``values`` (sum of m), ``nis`` (sum of NIS over sum
        of m: 1 for a consistent filter, above 1 when the bands are too narrow, below
        when too wide), ``lower``/``upper`` (its central 99% chi-square range) and
        ``verdict`` (``"consistent"``, ``"bands too narrow"``, ``"bands too wide"`` or
        ``"no measurements"``)."""
        return _consistency(self.innovations(), last)

    def forecast(
        self,
        until: float,
        planned_inputs: pd.DataFrame | Mapping[str, float] | None = None,
        *,
        points: int = 50,
    ) -> pd.DataFrame:
        """Predict from the current estimate to `until`, without further measurements.

        Args:
            until: last time [model time unit].
            planned_inputs: planned input values: a long table ``time, variable,
                value`` (continuous inputs held from their time, event amounts at their
                time), or a mapping of input values held from now. Default: the
                current inputs are held.
            points: output times, equally spaced (planned change times are added).

        Returns:
            Columns ``time, variable, mean, sd, lower95, upper95``, as :meth:`estimate`.
        """
        m = self.model
        if until < self.time:
            raise TwinError(f"forecast until {until:g} lies before the twin's time {self.time:g}")
        plan = planned(m, planned_inputs, self.time, until)
        grid = np.union1d(np.linspace(self.time, until, points), plan["time"].to_numpy(float))
        snap, out = self._snapshots[-1], []
        for t in grid:
            here = plan[plan["time"] == t]
            values = dict(zip(here["variable"], here["value"].astype(float)))
            snap = self._apply(snap, Record(float(t), values), measure=False)
            out.append(self._frame(snap))
        return pd.concat(out, ignore_index=True)

    # ------------------------------------------------------------------ internals
    def _apply(self, snap: Snapshot, record: Record, measure: bool = True) -> Snapshot:
        m = self.model
        values = record.values
        u = np.array([values.get(n, old) for n, old in zip(m.input_names, snap.u)], dtype=float)
        amounts = np.array([values.get(n, 0.0) for n in m.event_names], dtype=float)
        variables = m.variable_names
        mask = np.array([measure and v in values for v in variables])
        z = np.array([values.get(v, 0.0) for v in variables], dtype=float)
        r = np.array(
            [record.sd.get(v, self.measurement_sd.get(v, 1.0)) for v in variables], dtype=float
        )
        # a model error correlated over tau: each update tells only dt/tau of a new one
        since = np.maximum(record.time - snap.last, 1e-12)
        e = self._e * np.sqrt(np.maximum(1.0, self._tau / since))
        n = len(m.state_names)
        q = np.concatenate([snap.learned.q(self._q[:n]), self._q[n:]])
        s, P, ok, nis, inflation, nu, var = step(
            self._system,
            jnp.asarray(q),
            self._solver,
            snap.s,
            snap.P,
            jnp.asarray(snap.time, dtype=float),
            jnp.asarray(record.time, dtype=float),
            snap.u,
            u,
            self._c,
            z,
            mask,
            r,
            e,
            amounts,
            jnp.asarray(self._inflates),
        )
        if not bool(ok):
            raise TwinError(
                f"the filter failed between t={snap.time:g} and t={record.time:g} (a non-finite "
                "state or covariance, or the solver's step budget ran out); update ignored"
            )
        last = np.where(mask, record.time, snap.last)
        nu, var = np.asarray(nu[:n]), np.asarray(var[:n])
        sampled = mask[:n] & self._learns
        learned = snap.learned.after(q[:n], nu, var, z[:n] - nu, r[:n], since[:n], sampled)
        return Snapshot(
            record.time,
            s,
            P,
            u,
            last,
            learned,
            float(nis),
            int(mask.sum()),
            float(inflation),
        )

    def _frame(self, snap: Snapshot) -> pd.DataFrame:
        out = outputs(self._system, snap.s, snap.P, jnp.asarray(snap.time), snap.u, self._c)
        mean, sd = (np.asarray(a) for a in out)
        lower = mean - Z95 * sd
        n = len(self.model.state_names)  # states are concentrations, volumes: >= 0
        lower[:n] = np.maximum(lower[:n], 0.0)
        return pd.DataFrame(
            dict(
                time=snap.time,
                variable=self._system.names,
                mean=mean,
                sd=sd,
                lower95=lower,
                upper95=mean + Z95 * sd,
            )
        )
