"""E. coli fed-batch family with overflow metabolism (transfer suite; not part of the library).

Truth: the overflow model of Xu, Jahic & Enfors (1999), Biotechnol. Prog. 15:81-90
(E. coli W3110, aerobic batch and fed-batch on glucose), per gram of dry biomass,
states X, S, A [g/L], time [h]; the respiratory capacity limits glucose oxidation and
the excess glucose flows to acetate ("overflow"); acetate is reconsumed with the
oxidative capacity left; acetate inhibits glucose uptake and respiration:

    q_S      = q_S,max f_T S/(K_S + S) / (1 + A/K_i,s)                     [g/(g h)]
    c        = Y_xs,ox C_S/C_X         (carbon fraction of oxidised glucose to biomass)
    q_O,cap  = q_O,max f_T / (1 + A/K_i,o)                                [mmol O2/(g h)]
    q_O,s    = min((q_S - c (q_S - q_m,e)) Y_os, q_O,cap)     (O2 for glucose oxidation)
    q_S,ox   = q_O,s/Y_os + c (q_O,s/Y_os - q_m,e)/(1 - c),   q_m,e = min(q_m, q_S)
    q_S,of   = q_S - q_S,ox                                   (overflow glucose flux)
    q_A,p    = q_S,of (1 - Y_xs,of C_S/C_X) Y_as                (acetate formation)
    q_A,c    = min(q_A,c,max f_T A/(K_A + A) (1 - d), (q_O,cap - q_O,s)/Y_oa)/(1 - d),
               d = Y_xa C_A/C_X                               (acetate consumption)
    mu       = (q_S,ox - q_m) Y_xs,ox + q_S,of Y_xs,of + q_A,c Y_xa       [1/h]
    dX/dt = mu X,  dS/dt = -q_S X,  dA/dt = (q_A,p - q_A,c) X   (+ feed and dilution)

Values of the paper (as reimplemented in the literature, e.g. Anane et al. 2017):
q_S,max 1.3 g/(g h), K_S 0.05 g/L, K_i,s 5 g/L, q_O,max 15 mmol/(g h), K_i,o 4 g/L,
q_m 0.04 g/(g h), Y_xs,ox 0.5 g/g, Y_xs,of 0.15 g/g, Y_as 0.667 g/g, q_A,c,max
0.15 g/(g h), K_A 0.05 g/L, Y_xa 0.4 g/g, Y_os = Y_oa = 33.3 mmol O2/g, C_S = C_A =
30 g/Cmol, C_X = 24.6 g/Cmol. Batch growth at 37 degC: mu 0.56 1/h; critical mu 0.52 1/h.

Additions the paper does not have (it ran at 37 degC without product): a temperature
factor f_T = arrhenius(T, E_a, 310.15 K) on the maximal rates (E_a 55 kJ/mol), and a
recombinant product P [g/L] after induction (input I, 0 -> 1), Luedeking-Piret with
a low-temperature boost and acetate inhibition:
    q_P = I (alpha mu + beta) (1 + boost max(37 - T, 0)) / (1 + A/K_iP)        [g/(g h)]
alpha 0.03 g/g, beta 0.002 g/(g h), boost 0.08 1/degC, K_iP 2 g/L.

Processes (related targets differ from the source A in batch constants only):
- B1: rates: q_S,max 1.0, q_O,max 12, q_A,c,max 0.10 (a slower strain);
- B2: yields and inhibition: Y_xs,ox 0.42, Y_as 0.8, K_i,s 2 g/L;
- B3: temperature/product response: E_a 80 kJ/mol, boost 0.2, alpha 0.02;
- B4: scale-up: higher maintenance q_m 0.06 and lower respiratory capacity
  q_O,max 13 (gradients), with a concentrated feed (Sf 600-700 g/L instead of
  450-550) and faster exponential feeding (mu_set 0.16-0.24 1/h instead of 0.10-0.20).
The unrelated target U has its own truth: Haldane glucose uptake (no respiratory
limit), acetate formed in proportion to growth and consumed only when glucose is
low (diauxie), acetate inhibiting growth, no temperature effect on growth, and a
product rate independent of growth that *drops* at low temperature.

Recipes: inoculum X0 0.1-0.25 g/L, S0 8-12 g/L, A0 0-0.2 g/L, V0 1.0-1.4 L; batch
phase, then exponential feeding (hourly steps of F0 exp(mu_set (t - t_f)), from
0.5-1.5 h after the nominal glucose exhaustion, for 4-7 h), then constant feeding at
0.6-1.0x the last rate; induction (I = 1) -2..+2 h around the switch to constant
feed, with a temperature shift to 27-33 degC in 3 of every 4 batches (which ones:
random); 40 h. Offline samples every 4 h (X, S, A, P; P not at t = 0), 5% multiplicative
noise (dry weight, HPLC, product assay), each withdrawing 10 mL. "Daily" samples would
give 2 per run: E. coli fed-batches last two days, so samples are per 4-h shift.

Stiffness: in the glucose-limited fed-batch S sits at ~K_S with a time constant
K_S/(q_S,max X) ~ 1e-3 h at X ~ 40 g/L: explicit solvers need ~1e3 steps per 4-h
interval. The truth is solved with Tsit5 and a 16384-step budget (``TRUTH_SOLVER``); a
fit of the truth's equations needs Kvaerno5 (``REFIT_SOLVER``: Tsit5 at the fit's 1024
steps per interval fails). The hybrid model (K_S from 0.1 g/L) runs with Tsit5.
"""

from __future__ import annotations

import re

import diffrax as dfx
import numpy as np
import pandas as pd

import hybridxfer as hx

from ._common import default_counts, noisy_measurements, splits_and_shifts

NAME = "ecoli-overflow"
CITATION = (
    "Xu B, Jahic M, Enfors S-O (1999) Modeling of overflow metabolism in batch and "
    "fed-batch cultures of Escherichia coli. Biotechnol. Prog. 15:81-90"
)
SOURCE = "A"
RELATED_TARGETS = ("B1", "B2", "B3", "B4")
UNRELATED_TARGETS = ("U",)
SCORED = ("X", "P")

END, SAMPLE_EVERY, NOISE, SAMPLE_VOLUME = 40.0, 4.0, 0.05, 0.01
# the truth is solved explicitly with a large step budget (Tsit5 at rtol 1e-6 agrees with
# Kvaerno5 to 1e-3 relative, and compiles in a third of the time); fits of the truth's
# equations (refit_model) need REFIT_SOLVER: Tsit5 runs out of 1024 steps per interval
TRUTH_SOLVER = hx.Solver(rtol=1e-6, atol=1e-9, max_steps=16384)
REFIT_SOLVER = hx.Solver(solver=dfx.Kvaerno5(), rtol=1e-5, atol=1e-8, max_steps=1024)

STATES = """
[states]
X = { unit = "g/L" }
S = { unit = "g/L" }
A = { unit = "g/L" }
P = { unit = "g/L", initial = 0.0 }
[inputs]
F  = { unit = "L/h" }
T  = { unit = "degC" }
I  = { unit = "1" }
Vs = { unit = "L" }
[reactor]
mode = "fed-batch"
volume = "V"
feed_rate = "F"
feed = { S = "Sf" }
withdrawal = "Vs"
"""
RELATED = (
    '[model]\nname = "ecoli-overflow-truth"\ntime_unit = "h"\n'
    + STATES
    + """
[constants]
Sf = { unit = "g/L" }
qS_max = { unit = "g/(g h)" }
qO_max = { unit = "mmol/(g h)" }
qAc_max = { unit = "g/(g h)" }
q_m = { unit = "g/(g h)" }
Y_xs_ox = { unit = "g/g" }
Y_as = { unit = "g/g" }
K_is = { unit = "g/L" }
E_a = { unit = "J/mol" }
alpha = { unit = "g/g" }
boost = { unit = "1/degC" }
[parameters]
K_S = { value = 0.05, unit = "g/L" }
K_io = { value = 4.0, unit = "g/L" }
Y_xs_of = { value = 0.15, unit = "g/g" }
K_A = { value = 0.05, unit = "g/L" }
Y_xa = { value = 0.4, unit = "g/g" }
Y_os = { value = 33.3, unit = "mmol/g" }
beta = { value = 0.002, unit = "g/(g h)" }
K_iP = { value = 2.0, unit = "g/L" }
[rates]
f_T = "arrhenius(T + 273.15, E_a, 310.15)"
qS = "qS_max * f_T * monod(S, K_S) * noncompetitive_inhibition(A, K_is)"
c = "Y_xs_ox * 30 / 24.6"
d = "Y_xa * 30 / 24.6"
qm_e = "min(q_m, qS)"
OUC = "qO_max * f_T * noncompetitive_inhibition(A, K_io)"
qO_s = "min((qS - c * (qS - qm_e)) * Y_os, OUC)"
qS_ox = "qO_s / Y_os + c * max(qO_s / Y_os - qm_e, 0) / (1 - c)"
qS_of = "max(qS - qS_ox, 0)"
qA_p = "qS_of * (1 - Y_xs_of * 30 / 24.6) * Y_as"
qA_c = "min(qAc_max * f_T * monod(A, K_A) * (1 - d), (OUC - qO_s) / Y_os) / (1 - d)"
mu = "(qS_ox - q_m) * Y_xs_ox + qS_of * Y_xs_of + qA_c * Y_xa"
f_P = "(1 + boost * max(37 - T, 0)) * noncompetitive_inhibition(A, K_iP)"
qP = "I * (alpha * max(mu, 0) + beta) * f_P"
[balances]
X = "mu * X"
S = "-qS * X"
A = "(qA_p - qA_c) * X"
P = "qP * X"
"""
)
UNRELATED = (
    '[model]\nname = "ecoli-unrelated-truth"\ntime_unit = "h"\n'
    + STATES
    + """
[constants]
Sf = { unit = "g/L" }
[parameters]
mu_max = { value = 0.6, unit = "1/h" }
K_S = { value = 0.1, unit = "g/L" }
K_I = { value = 20.0, unit = "g/L" }
K_iA = { value = 3.0, unit = "g/L" }
Y_xs = { value = 0.45, unit = "g/g" }
m_s = { value = 0.03, unit = "g/(g h)" }
Y_ax = { value = 0.25, unit = "g/g" }
q_ac = { value = 0.12, unit = "g/(g h)" }
K_cat = { value = 0.2, unit = "g/L" }
Y_xa = { value = 0.3, unit = "g/g" }
q_p0 = { value = 0.012, unit = "g/(g h)" }
[rates]
mu_S = "mu_max * haldane(S, K_S, K_I) * noncompetitive_inhibition(A, K_iA)"
qS = "pirt(mu_S, Y_xs, m_s) * monod(S, 0.01)"
q_c = "q_ac * monod(A, 0.1) * K_cat / (K_cat + S)"
mu = "mu_S + Y_xa * q_c"
qP = "I * q_p0 * max(1 - 0.06 * max(37 - T, 0), 0)"
[balances]
X = "mu * X"
S = "-qS * X"
A = "(Y_ax * mu_S - q_c) * X"
P = "qP * X"
"""
)
SOURCE_CONSTANTS = dict(
    qS_max=1.3,
    qO_max=15.0,
    qAc_max=0.15,
    q_m=0.04,
    Y_xs_ox=0.5,
    Y_as=0.667,
    K_is=5.0,
    E_a=55000.0,
    alpha=0.03,
    boost=0.08,
)
PROCESSES = {  # truth constants per process (related truth) or None (unrelated truth)
    "A": SOURCE_CONSTANTS,
    "B1": SOURCE_CONSTANTS | dict(qS_max=1.0, qO_max=12.0, qAc_max=0.10),
    "B2": SOURCE_CONSTANTS | dict(Y_xs_ox=0.42, Y_as=0.8, K_is=2.0),
    "B3": SOURCE_CONSTANTS | dict(E_a=80000.0, boost=0.2, alpha=0.02),
    "B4": SOURCE_CONSTANTS | dict(q_m=0.06, qO_max=13.0),
    "U": None,
}
# feeding per process: (Sf range [g/L], mu_set range [1/h])
FEEDING = {p: ((450.0, 550.0), (0.10, 0.20)) for p in PROCESSES} | {
    "B4": ((600.0, 700.0), (0.16, 0.24))
}

HYBRID = (
    '[model]\nname = "ecoli-overflow-hybrid"\ntime_unit = "h"\n'
    + STATES
    + """
[constants]
Sf = { unit = "g/L" }
[parameters]
qS_max = { value = 1.0, unit = "g/(g h)", bounds = [0.1, 5.0] }
K_S = { value = 0.1, unit = "g/L", bounds = [0.005, 2.0] }
Y_xs = { value = 0.45, unit = "g/g", bounds = [0.1, 0.8] }
m_s = { value = 0.03, unit = "g/(g h)", bounds = [0.001, 0.2] }
Y_as = { value = 0.5, unit = "g/g", bounds = [0.05, 1.5] }
qAc_max = { value = 0.1, unit = "g/(g h)", bounds = [0.005, 1.0] }
K_A = { value = 0.1, unit = "g/L", bounds = [0.005, 2.0] }
Y_xa = { value = 0.3, unit = "g/g", bounds = [0.05, 0.8] }
[networks.uptake]
inputs = ["A", "T"]
hidden = [8, 8]
output = "positive"
[networks.overflow]
inputs = ["S", "A", "T"]
hidden = [8, 8]
output = "positive"
scale = 0.1
[networks.production]
inputs = ["S", "A", "T"]
hidden = [8, 8]
output = "positive"
scale = 0.005
[rates]
qS = "qS_max * monod(S, K_S) * uptake"
qA_p = "overflow * monod(S, K_S)"
qA_c = "qAc_max * monod(A, K_A)"
mu = "Y_xs * (qS - m_s - qA_p / Y_as) + Y_xa * qA_c"
[balances]
X = "mu * X"
S = "-qS * X"
A = "(qA_p - qA_c) * X"
P = "I * production * X"
"""
)


def truth_model(process: str) -> hx.HybridModel:
    """The ground-truth model of `process` (its constants are batch constants)."""
    related = PROCESSES[process] is not None
    return hx.parse_model(RELATED if related else UNRELATED, source=f"truth {process}")


def hybrid_model() -> hx.HybridModel:
    """The model a user would write: balances, a Monod uptake backbone with yields and
    Monod acetate consumption, and networks for acetate inhibition of uptake (A, T),
    the overflow acetate rate (S, A, T) and the specific product rate (S, A, T; on
    only after induction)."""
    return hx.parse_model(HYBRID, source="ecoli-overflow hybrid")


def refit_model() -> hx.HybridModel:
    """The related truth's equations with its process constants (all but the feed's Sf)
    as free parameters starting from A's values."""
    text = RELATED
    for name, value in SOURCE_CONSTANTS.items():
        unit = re.search(rf'^{name} = {{ unit = "([^"]*)" }}\n', text, re.M)
        text = text.replace(unit.group(0), "")
        text = text.replace(
            "[parameters]\n",
            f'[parameters]\n{name} = {{ value = {value}, unit = "{unit.group(1)}" }}\n',
        )
    return hx.parse_model(text, source="ecoli truth, process constants free")


def truth_simulation(family: hx.Study, process: str, split: str = "test") -> pd.DataFrame:
    """The truth's noise-free values of a process's batches at their measurement times."""
    part = family.select(process=process, split=split)
    batches = part.batches.assign(**(PROCESSES[process] or {}))
    study = hx.Study(part.measurements, part.inputs, batches)
    return hx.simulate(truth_model(process), study, solver=TRUTH_SOLVER)


def _recipe(rng, process: str, batch: str, shift: bool):
    """Initial measurements, input rows and the feed concentration of one batch."""
    x0 = dict(X=rng.uniform(0.1, 0.25), S=rng.uniform(8.0, 12.0), A=rng.uniform(0.0, 0.2))
    x0["V"] = rng.uniform(1.0, 1.4)
    meas = [(batch, 0.0, v, round(x, 3)) for v, x in x0.items()]
    (sf_lo, sf_hi), (mu_lo, mu_hi) = FEEDING[process]
    sf, mu_set = round(rng.uniform(sf_lo, sf_hi)), rng.uniform(mu_lo, mu_hi)
    # feeding starts soon after the batch glucose runs out (the DO spike), nominally
    # at mu 0.45 1/h and yield 0.45 g/g
    t_exh = np.log(1 + 0.45 * x0["S"] / x0["X"]) / 0.45
    t_f, d_exp = np.ceil(2 * t_exh) / 2 + float(rng.integers(1, 4)) / 2, float(rng.integers(4, 8))
    f0 = mu_set * (x0["X"] + 0.45 * x0["S"]) * x0["V"] / (0.45 * sf)
    steps = np.arange(t_f, t_f + d_exp)
    inputs = [(batch, 0.0, "F", 0.0)]
    inputs += [(batch, t, "F", round(f0 * np.exp(mu_set * (t - t_f)), 6)) for t in steps]
    f_c = f0 * np.exp(mu_set * d_exp) * rng.uniform(0.6, 1.0)
    inputs.append((batch, t_f + d_exp, "F", round(f_c, 6)))
    t_ind = t_f + d_exp + float(rng.integers(-2, 3))
    inputs += [(batch, 0.0, "I", 0.0), (batch, t_ind, "I", 1.0), (batch, 0.0, "T", 37.0)]
    if shift:
        inputs.append((batch, t_ind, "T", round(rng.uniform(27.0, 33.0), 1)))
    samples = np.arange(SAMPLE_EVERY, END, SAMPLE_EVERY)
    inputs += [(batch, t, "Vs", SAMPLE_VOLUME) for t in samples]
    return meas, inputs, sf


def make_family(seed: int = 0, counts: dict[str, tuple[int, int, int]] | None = None) -> hx.Study:
    """The family as one study, truth constants dropped.

    Args:
        seed: noise and recipe seed.
        counts: per process (train, valid, test) batch counts; default A (8, 2, 0) and
            every target (12, 0, 6).
    """
    counts = counts or default_counts(PROCESSES, SOURCE)
    rng = np.random.default_rng(seed)
    times = np.arange(0.0, END + 1e-9, SAMPLE_EVERY)
    columns = ["batch", "time", "variable", "value"]
    parts = []
    for process, count in counts.items():
        splits, shifts = splits_and_shifts(rng, count)
        consts = PROCESSES[process]
        meas, inputs, rows = [], [], []
        for i, (split, shift) in enumerate(zip(splits, shifts)):
            b = f"{process}-{i + 1:02d}"
            m, u, sf = _recipe(rng, process, b, shift)
            meas, inputs = meas + m, inputs + u
            rows.append(dict(batch=b, process=process, split=split, Sf=sf, **(consts or {})))
        study = hx.study_from_frames(
            pd.DataFrame(meas, columns=columns), pd.DataFrame(inputs, columns=columns), rows
        )
        sim = hx.simulate(
            truth_model(process),
            study,
            times={b: times for b in study.batch_names},
            solver=TRUTH_SOLVER,
        )
        parts.append(
            (
                noisy_measurements(sim, study, rng, NOISE, 5),
                study.inputs,
                study.batches[["batch", "process", "split", "Sf"]],
            )
        )
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*parts))
    return hx.study_from_frames(meas, inputs, batches, name=NAME)


if __name__ == "__main__":
    family = make_family()
    print(family.batches.groupby(["process", "split"]).size())
    finals = family.measurements.query("time == @END")
    print(finals.merge(family.batches).groupby(["process", "variable"])["value"].median().unstack())
