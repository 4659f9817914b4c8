"""Penicillin fed-batch process family for the transfer suite (a data generator, not library).

Truth: the Bajpai & Reuss (1980) mechanistic model of penicillin production, with the
temperature and pH factors and parameter values of PenSim (Birol, Undey & Cinar 2002),
the core of IndPenSim. Dissolved oxygen is taken as non-limiting (the C_L terms = 1).
Units: time h, X (biomass), S (glucose), P (penicillin) in g/L, V in L, T in degC, pH.

    mu   = mu_X / (1 + K_1/[H+] + [H+]/K_2) * S / (K_X X + S)
           * (k_g exp(-E_g/(R T_K)) - k_d exp(-E_d/(R T_K)))          (Contois, Birol eq. 1)
    q_P  = mu_p * S / (K_p + S + S^2/K_I)                             (substrate inhibited)
    dX/dt = mu X                                   - X F/V
    dP/dt = q_P X - K_h P                          - P F/V          (first-order hydrolysis)
    dS/dt = -(mu/Y_xs + q_P/Y_ps + m_X) X + F s_f/V - S F/V
    dV/dt = F  (minus the daily samples)

with [H+] = 10^-pH [mol/L], T_K = T + 273.15. The Arrhenius pair is written in the
equivalent reference form k exp(-E/(R T_K)) = k exp(-E/(R T_ref)) * arrhenius(T_K, E, T_ref)
at T_ref = 298.15 K: g_ref = 7e3 exp(-5100/(1.987 * 298.15)) = 1.2776 and
d_ref = 1e33 exp(-50000/(1.987 * 298.15)) = 2.218e-4, so that a target can change E_g
without its growth level at 25 degC. Maintenance uptake carries a guard S/(S + 1e-3) so
that S cannot go negative while the feed is off (the published model has none).

Values of the source A (Birol et al. 2002, Table 1): mu_X = 0.092 1/h, K_X = 0.15 g/g,
mu_p = 0.005 1/h, K_p = 0.0002 g/L, K_I = 0.10 g/L, K_h = 0.04 1/h, m_X = 0.014 g/(g h),
Y_xs = 0.45 g/g, Y_ps = 0.90 g/g, K_1 = 1e-10 mol/L, K_2 = 7e-5 mol/L, k_g = 7e3,
E_g = 5100 cal/mol (21338 J/mol), k_d = 1e33, E_d = 50000 cal/mol (209200 J/mol),
feed glucose s_f = 600 g/L; seed S ~ 15 g/L, X ~ 0.1 g/L, V ~ 100 L, T 25 degC, pH 5.

Related targets (same truth, batch constants only):
- ``B1`` maximal rates: mu_X 0.092 -> 0.075 1/h, mu_p 0.005 -> 0.0065 1/h;
- ``B2`` yields: Y_xs 0.45 -> 0.38, Y_ps 0.90 -> 0.70, m_X 0.014 -> 0.018 g/(g h);
- ``B3`` temperature/pH response: E_g 5100 -> 15000 cal/mol, K_2 7e-5 -> 1.5e-5 mol/L;
- ``B4`` scale and feeding: 1000 L with feed medium s_f = 500 g/L; K_X 0.15 -> 0.25 g/g
  (poorer mixing) and K_h 0.04 -> 0.055 1/h.
Unrelated ``U``: Monod growth with a cardinal temperature factor (CTMI, 10/28/34 degC)
and first-order death, growth-associated Luedeking-Piret production with a cardinal pH
factor (4/6.5/8), no product hydrolysis, no substrate inhibition of production.

Recipes: seed X0 0.05-0.2 g/L, S0 12-18 g/L; a continuous feed from day 1-2 with a change
(x0.6-1.4) on day 6-9; pH set point 4.8-5.4 per batch; a temperature shift from 25 degC
to 22-28 degC on day 3-7 in 3 of every 4 batches; 14 days. Daily offline samples of X,
S, P (P not at t = 0), 5% multiplicative noise; each sample withdraws 50 mL (input Vs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import hybridxfer as hx

from ._common import default_counts, noisy_measurements, splits_and_shifts

NAME = "penicillin"
CITATION = (
    "Bajpai & Reuss 1980, J. Chem. Technol. Biotechnol. 30:332-344; parameters, "
    "temperature and pH terms of PenSim, Birol, Undey & Cinar 2002, Comput. Chem. Eng. "
    "26:1553-1565"
)
SOURCE = "A"
RELATED_TARGETS = ("B1", "B2", "B3", "B4")
UNRELATED_TARGETS = ("U",)
SCORED = ("X", "P")
DAYS, NOISE, SAMPLE_VOLUME = 14, 0.05, 0.05

STATES = """
[states]
X = { unit = "g/L" }
S = { unit = "g/L" }
P = { unit = "g/L", initial = 0.0 }
[inputs]
F  = { unit = "L/h" }
T  = { unit = "degC" }
pH = { unit = "1" }
Vs = { unit = "L" }
[reactor]
mode = "fed-batch"
volume = "V"
feed_rate = "F"
feed = { S = "s_f" }
withdrawal = "Vs"
"""
UNITS = dict(
    mu_X="1/h", K_X="g/g", mu_p="1/h", K_I="g/L", K_h="1/h", m_X="g/(g h)",
    Y_xs="g/g", Y_ps="g/g", E_g="J/mol", K_2="mol/L",
)  # fmt: skip
RELATED_BODY = """
[parameters]
K_p = { value = 0.0002, unit = "g/L" }
K_1 = { value = 1e-10, unit = "mol/L" }
g_ref = { value = 1.2776, unit = "1" }
d_ref = { value = 2.218e-4, unit = "1" }
E_d = { value = 209200.0, unit = "J/mol" }
[rates]
f_pH = "1 / (1 + K_1 / 10 ** (-pH) + 10 ** (-pH) / K_2)"
f_T = "g_ref * arrhenius(T + 273.15, E_g, 298.15) - d_ref * arrhenius(T + 273.15, E_d, 298.15)"
mu = "mu_X * f_pH * contois(S, X, K_X) * f_T"
q_p = "mu_p * haldane(S, K_p, K_I)"
q_s = "mu / Y_xs + q_p / Y_ps + m_X * monod(S, 0.001)"
[balances]
X = "mu * X"
S = "-q_s * X"
P = "q_p * X - K_h * P"
"""


def _constants(names) -> str:
    return "".join(f'{k} = {{ unit = "{UNITS[k]}" }}\n' for k in names)


RELATED = (
    '[model]\nname = "penicillin-truth"\ntime_unit = "h"\n'
    + STATES
    + '[constants]\ns_f = { unit = "g/L" }\n'
    + _constants(UNITS)
    + RELATED_BODY
)
UNRELATED = (
    '[model]\nname = "penicillin-unrelated-truth"\ntime_unit = "h"\n'
    + STATES
    + """
[constants]
s_f = { unit = "g/L" }
[parameters]
mu_max = { value = 0.11, unit = "1/h" }
K_s = { value = 0.1, unit = "g/L" }
k_d = { value = 0.004, unit = "1/h" }
Y_xs = { value = 0.45, unit = "g/g" }
Y_ps = { value = 0.9, unit = "g/g" }
m_X = { value = 0.012, unit = "g/(g h)" }
alpha = { value = 0.02, unit = "g/g" }
beta = { value = 0.0012, unit = "g/(g h)" }
[rates]
mu = "mu_max * monod(S, K_s) * cardinal_temperature(T, 10.0, 28.0, 34.0)"
q_p = "luedeking_piret(mu, alpha, beta) * cardinal_ph(pH, 4.0, 6.5, 8.0) * monod(S, 0.001)"
q_s = "mu / Y_xs + q_p / Y_ps + m_X * monod(S, 0.001)"
[balances]
X = "(mu - k_d) * X"
S = "-q_s * X"
P = "q_p * X"
"""
)
CONSTANTS = dict(
    mu_X=0.092, K_X=0.15, mu_p=0.005, K_I=0.10, K_h=0.04, m_X=0.014,
    Y_xs=0.45, Y_ps=0.90, E_g=21338.4, K_2=7e-5,
)  # fmt: skip
PROCESSES = {  # truth constants per process (related truth) or None (unrelated truth)
    "A": CONSTANTS,
    "B1": CONSTANTS | dict(mu_X=0.075, mu_p=0.0065),
    "B2": CONSTANTS | dict(Y_xs=0.38, Y_ps=0.70, m_X=0.018),
    "B3": CONSTANTS | dict(E_g=62760.0, K_2=1.5e-5),
    "B4": CONSTANTS | dict(K_X=0.25, K_h=0.055),
    "U": None,
}
SCALE = {"B4": (10.0, 500.0)}  # process: (volume factor, feed glucose g/L); else (1, 600)

HYBRID = (
    """
[model]
name = "penicillin-hybrid"
time_unit = "h"
"""
    + STATES
    + """
[constants]
s_f = { unit = "g/L" }
[parameters]
mu_max = { value = 0.1, unit = "1/h", bounds = [0.005, 0.5], process_specific = true }
K_s = { value = 0.5, unit = "g/L" }
Y_xs = { value = 0.45, unit = "g/g", bounds = [0.1, 0.9], process_specific = true }
Y_ps = { value = 0.9, unit = "g/g", fixed = true }
m_s = { value = 0.015, unit = "g/(g h)", bounds = [0.001, 0.1] }
q_pmax = { value = 0.004, unit = "1/h", bounds = [0.0001, 0.05], process_specific = true }
k_h = { value = 0.02, unit = "1/h", bounds = [0.001, 0.2] }
[networks.growth]
inputs = ["S", "X"]
hidden = [16, 16]
output = "positive"
[networks.environment]
inputs = ["T", "pH"]
hidden = [16, 16]
output = "positive"
[networks.production]
inputs = ["S", "X", "T"]
hidden = [16, 16]
output = "positive"
[rates]
mu = "mu_max * monod(S, K_s) * growth * environment"
q_p = "q_pmax * production"
q_s = "pirt(mu, Y_xs, m_s) * monod(S, 0.001) + q_p / Y_ps"
[balances]
X = "mu * X"
S = "-q_s * X"
P = "q_p * X - k_h * P"
"""
)


def truth_model(process: str) -> hx.HybridModel:
    """The ground-truth model of `process` (its constants are batch constants)."""
    return hx.parse_model(RELATED if PROCESSES[process] else UNRELATED, source=f"truth {process}")


def hybrid_model() -> hx.HybridModel:
    """The model a user would write: balances with yields, Pirt maintenance, a Monod
    growth term and first-order product hydrolysis; networks for the growth factor
    (S, X), the temperature/pH factor (T, pH) and the specific production (S, X, T)."""
    return hx.parse_model(HYBRID, source="penicillin hybrid model")


def refit_model() -> hx.HybridModel:
    """The related truth's equations with its process constants (all but the feed's
    s_f) as free parameters starting from A's values: the truth-refit reference."""
    params = "".join(
        f'{k} = {{ value = {CONSTANTS[k]}, unit = "{UNITS[k]}" }}\n' for k in CONSTANTS
    )
    text = (
        '[model]\nname = "penicillin-truth-refit"\ntime_unit = "h"\n'
        + STATES
        + '[constants]\ns_f = { unit = "g/L" }\n'
        + RELATED_BODY.replace("[parameters]\n", "[parameters]\n" + params)
    )
    return hx.parse_model(text, source="penicillin truth, process constants free")


def truth_simulation(family: hx.Study, process: str, split: str = "test") -> pd.DataFrame:
    """The truth's noise-free values of a process's batches at their measurement times."""
    part = family.select(process=process, split=split)
    batches = part.batches.assign(**(PROCESSES[process] or {}))
    return hx.simulate(truth_model(process), hx.Study(part.measurements, part.inputs, batches))


def _recipe(rng, batch: str, shift: bool, scale: float):
    """Initial measurements and input rows of one batch (temperature shift if `shift`)."""
    x0 = dict(X=rng.uniform(0.05, 0.2), S=rng.uniform(12.0, 18.0), V=scale * rng.uniform(90, 110))
    meas = [(batch, 0.0, v, round(x, 4)) for v, x in x0.items()]
    on, change = 24.0 * rng.uniform(1.0, 2.0), 24.0 * rng.uniform(6.0, 9.0)
    f1 = scale * rng.uniform(0.03, 0.05)
    f2 = f1 * rng.uniform(0.6, 1.4)
    inputs = [(batch, 0.0, "F", 0.0), (batch, round(on), "F", round(f1, 5))]
    inputs += [(batch, round(change), "F", round(f2, 5)), (batch, 0.0, "T", 25.0)]
    inputs.append((batch, 0.0, "pH", round(rng.uniform(4.8, 5.4), 2)))
    if shift:
        inputs.append((batch, 24.0 * rng.integers(3, 8), "T", round(rng.uniform(22.0, 28.0), 1)))
    inputs += [(batch, 24.0 * d, "Vs", SAMPLE_VOLUME) for d in range(1, DAYS)]
    return meas, inputs


def make_family(seed: int = 0, counts: dict[str, tuple[int, int, int]] | None = None) -> hx.Study:
    """The family as one study, truth constants dropped (batches.csv keeps s_f only).

    Args:
        seed: noise and recipe seed.
        counts: per process (train, valid, test) batch counts; default A (8, 2, 0) and
            every target (12, 0, 6).
    """
    counts = counts or default_counts(PROCESSES, SOURCE)
    rng = np.random.default_rng(seed)
    times = np.arange(0, DAYS + 1) * 24.0
    columns = ["batch", "time", "variable", "value"]
    parts = []
    for process, count in counts.items():
        splits, shifts = splits_and_shifts(rng, count)
        scale, s_f = SCALE.get(process, (1.0, 600.0))
        meas, inputs, rows = [], [], []
        for i, (split, shift) in enumerate(zip(splits, shifts)):
            b = f"{process}-{i + 1:02d}"
            m, u = _recipe(rng, b, shift, scale)
            meas, inputs = meas + m, inputs + u
            rows.append(dict(batch=b, process=process, split=split, s_f=s_f))
        truth_rows = [r | (PROCESSES[process] or {}) for r in rows]
        study = hx.study_from_frames(
            pd.DataFrame(meas, columns=columns), pd.DataFrame(inputs, columns=columns), truth_rows
        )
        sim = hx.simulate(truth_model(process), study, times={b: times for b in study.batch_names})
        measured = noisy_measurements(sim, study, rng, NOISE, 6)
        parts.append((measured, study.inputs, pd.DataFrame(rows)))
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*parts))
    return hx.study_from_frames(meas, inputs, batches, name="penicillin-family")


if __name__ == "__main__":
    family = make_family()
    print(family.batches.groupby(["process", "split"]).size())
    finals = family.measurements.query("time == @DAYS * 24")
    print(finals.merge(family.batches).groupby(["process", "variable"])["value"].median().unstack())
