"""CHO fed-batch family with glutamine/ammonia and a lactate switch (a data generator for
the transfer suite, issue 26; not part of the library).

Truth: the unstructured CHO model of Xing, Bishop, Leister and Li (2010), "Modeling
kinetics of a large-scale fed-batch CHO cell culture by Markov chain Monte Carlo method",
Biotechnol. Prog. 26(1):208-219, doi:10.1002/btpr.284, in the form and with the values
tabulated by Möller et al. (2018), Bioengineering 5(1):25, doi:10.3390/bioengineering5010025
(Table 2; "Lit." values there are Xing's MCMC estimates). Units: time h, Xv 1e9 cells/L
(= 1e6 cells/mL), metabolites mM, titre P mg/L, volume L; 1e-12 mmol/(cell h) =
0.001 mmol/(1e9 cells h)::

    mu   = mu_max f_T Glc/(K_glc+Glc) Gln/(K_gln+Gln) KI_lac/(KI_lac+Lac) KI_amm/(KI_amm+Amm)
    mu_d = k_d Lac/(KD_lac+Lac) Amm/(KD_amm+Amm)                 death rises with ammonia
    q_glc = mu/Y_xglc + m_glc                                     (Pirt)
    q_gln = mu/Y_xgln + m_gln,   m_gln = a1 Gln/(a2+Gln)
    q_amm = max(Y_ammgln mu/Y_xgln - r_amm, 0)                    ammonia removal r_amm
    q_lac = Y_lacglc q_glc - q_lup Lac/(1+Lac) K_sw^2/(K_sw^2+Glc^2)   lactate switch
    q_p   = (alpha mu + beta) (1 + boost max(37 - T, 0))
    dXv/dt = (mu - mu_d) Xv, dGlc/dt = -q_glc Xv, dGln/dt = -q_gln Xv,
    dLac/dt = q_lac Xv, dAmm/dt = q_amm Xv, dP/dt = q_p Xv   (+ feed, bolus, dilution)

Literature values (Möller 2018 Table 2: Xing's estimates; K_glc from its other source),
the same in every process: K_glc = 1.0 mM, K_gln = 0.047 mM, KI_lac = 43 mM, KD_lac =
45.8 mM, KD_amm = 6.51 mM, Y_xgln = 0.974 1e9 cells/mmol, Y_ammgln = 0.67 mol/mol, r_amm
= 6.3e-12 mmol/(cell h) = 0.0063, a1 = 3.2e-12 mmol/(cell h) = 0.0032, a2 = 2.1 mM.
Per-process constants, source A at the table's values (its own culture's estimates):
mu_max = 0.039 1/h, Y_xglc = 0.357 1e9 cells/mmol, Y_lacglc = 0.70 mol/mol, KI_amm =
6.51 mM, m_glc = 69.2e-12 mmol/(cell h) = 0.0692 mmol/(1e9 cells h); k_d = 0.02 1/h (the
table's 0.004 is the maximum of its own culture, where mu_d's two saturation factors
stay small; here 0.02, so that viable cells decline late); the table's Q_mAb = 1.51e-12
g/(cell h) = 1.51 mg/(1e9 cells h) is split Luedeking-Piret-wise, alpha = 15 mg/1e9
cells, beta = 1.0 mg/(1e9 cells h) (1.5 at mu = 0.035). Additions to the published
model, written down here: the lactate switch (consumption q_lup = 0.08 mmol/(1e9 cells
h) once glucose falls below K_sw = 5 mM, a glucose-triggered switch as several CHO
models have, e.g. Nolan and Lee 2011), a temperature response (f_T = Arrhenius, E_a = 90
kJ/mol about 37 degC; the low-temperature titre boost 0.15 1/degC), and Monod guards
monod(S, 0.05) on glucose and glutamine uptake so that they stop at zero.

Related targets (constants only): ``B1`` rates (mu_max 0.030, beta 1.6, m_glc 0.05);
``B2`` yields and inhibition (Y_xglc 0.28, Y_lacglc 1.0, KI_amm 3.5); ``B3``
temperature response (E_a 180 kJ/mol, boost 0.40); ``B4`` scale and feeding: a 200-L
reactor fed by daily boluses instead of a continuous feed, with higher death and
stronger ammonia inhibition (k_d 0.035, KI_amm 4.5). The unrelated target ``U`` is a
glutamine-independent (GS-type) line: Haldane growth on glucose, no glutamine limit,
Levenspiel ammonia inhibition, death linear in lactate, ammonia from glutamine's
spontaneous decay, growth-linked lactate, and a titre rate that falls with growth and
at low temperature.

Recipes: 14 days; seeding Xv 0.3-0.6, Glc 25-40, Gln 4-8, Lac 0-3, Amm 0.2-1 mM,
V 0.9-1.1 L (B4: 180-220 L); feed medium Sglc 240-360 mM, Sgln 25-45 mM; a continuous
feed from day 3 with a change on day 7-9 (B4: daily boluses of the same daily volume);
a temperature shift (day 4-7, to 32-35 degC) in 3 of every 4 batches of each split.
Daily offline samples of Xv, Glc, Gln, Lac, Amm, P (P not at t = 0) with 5% multiplicative
noise (cell counter and metabolite analyser), each withdrawing 5 mL (B4: 20 mL).
``truth_simulation`` starts, as any model does, from the noisy t = 0 measurements: its
median relative deviation from the measurements is 4-5% (the noise alone: 3.4%).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

import hybridxfer as hx

from ._common import default_counts, noisy_measurements, splits_and_shifts

NAME = "cho-glutamine"
CITATION = (
    "Xing, Bishop, Leister, Li (2010) Biotechnol. Prog. 26(1):208-219, doi:10.1002/btpr.284; "
    "values as tabulated in Möller et al. (2018) Bioengineering 5(1):25"
)
SOURCE = "A"
RELATED_TARGETS = ("B1", "B2", "B3", "B4")
UNRELATED_TARGETS = ("U",)
SCORED = ("Xv", "P")
DAYS, NOISE = 14, 0.05
MEASURED = ("Xv", "Glc", "Gln", "Lac", "Amm", "P")

_STATES = """
[states]
Xv  = { unit = "1e9 cells/L" }
Glc = { unit = "mM" }
Gln = { unit = "mM" }
Lac = { unit = "mM" }
Amm = { unit = "mM" }
P   = { unit = "mg/L", initial = 0.0 }
[inputs]
F  = { unit = "L/h" }
T  = { unit = "degC" }
Vb = { unit = "L" }
Vs = { unit = "L" }
[reactor]
mode = "fed-batch"
volume = "V"
feed_rate = "F"
feed = { Glc = "Sglc", Gln = "Sgln" }
bolus = { volume = "Vb" }
withdrawal = "Vs"
"""
_FEED = '[constants]\nSglc = { unit = "mM" }\nSgln = { unit = "mM" }\n'
_UNITS = dict(
    mu_max="1/h", Y_xglc="1e9 cells/mmol", Y_lacglc="mol/mol", KI_amm="mM",
    m_glc="mmol/(1e9 cells h)", k_d="1/h", beta="mg/(1e9 cells h)", E_a="J/mol", boost="1/degC",
)  # fmt: skip
RELATED = (
    '[model]\nname = "cho-glutamine-truth"\ntime_unit = "h"\n'
    + _STATES
    + _FEED
    + "".join(f'{k} = {{ unit = "{u}" }}\n' for k, u in _UNITS.items())
    + """[parameters]
K_glc = { value = 1.0, unit = "mM" }
K_gln = { value = 0.047, unit = "mM" }
KI_lac = { value = 43.0, unit = "mM" }
KD_lac = { value = 45.8, unit = "mM" }
KD_amm = { value = 6.51, unit = "mM" }
Y_xgln = { value = 0.974, unit = "1e9 cells/mmol" }
Y_ammgln = { value = 0.67, unit = "mol/mol" }
r_amm = { value = 0.0063, unit = "mmol/(1e9 cells h)" }
a1 = { value = 0.0032, unit = "mmol/(1e9 cells h)" }
a2 = { value = 2.1, unit = "mM" }
q_lup = { value = 0.08, unit = "mmol/(1e9 cells h)" }
K_sw = { value = 5.0, unit = "mM" }
alpha = { value = 15.0, unit = "mg/1e9 cells" }
[rates]
f_T = "arrhenius(T + 273.15, E_a, 310.15)"
inhib = "noncompetitive_inhibition(Lac, KI_lac) * noncompetitive_inhibition(Amm, KI_amm)"
mu = "mu_max * f_T * monod(Glc, K_glc) * monod(Gln, K_gln) * inhib"
mu_d = "k_d * monod(Lac, KD_lac) * monod(Amm, KD_amm)"
q_glc = "pirt(mu, Y_xglc, m_glc) * monod(Glc, 0.05)"
q_gln = "(mu / Y_xgln + a1 * monod(Gln, a2)) * monod(Gln, 0.05)"
q_amm = "max(Y_ammgln * mu / Y_xgln - r_amm, 0)"
q_lac = "Y_lacglc * q_glc - q_lup * monod(Lac, 1.0) * K_sw**2 / (K_sw**2 + Glc**2)"
q_p = "luedeking_piret(mu, alpha, beta) * (1 + boost * max(37 - T, 0))"
[balances]
Xv = "(mu - mu_d) * Xv"
Glc = "-q_glc * Xv"
Gln = "-q_gln * Xv"
Lac = "q_lac * Xv"
Amm = "q_amm * Xv"
P = "q_p * Xv"
"""
)
UNRELATED = (
    '[model]\nname = "cho-gs-unrelated-truth"\ntime_unit = "h"\n'
    + _STATES
    + _FEED
    + """[parameters]
mu_max = { value = 0.045, unit = "1/h" }
K_glc = { value = 2.0, unit = "mM" }
K_i = { value = 60.0, unit = "mM" }
Amm_max = { value = 25.0, unit = "mM" }
k_d = { value = 0.002, unit = "1/h" }
k_dl = { value = 0.0004, unit = "1/(mM h)" }
Y_xglc = { value = 0.30, unit = "1e9 cells/mmol" }
m_glc = { value = 0.03, unit = "mmol/(1e9 cells h)" }
q_gln0 = { value = 0.006, unit = "mmol/(1e9 cells h)" }
k_deg = { value = 0.004, unit = "1/h" }
Y_lacx = { value = 1.5, unit = "mmol/1e9 cells" }
k_lc = { value = 0.002, unit = "L/(1e9 cells h)" }
q_p0 = { value = 2.0, unit = "mg/(1e9 cells h)" }
[rates]
mu = "mu_max * haldane(Glc, K_glc, K_i) * product_inhibition(Amm, Amm_max, 1.5)"
q_glc = "pirt(mu, Y_xglc, m_glc) * monod(Glc, 0.05)"
q_p = "q_p0 * (1 - mu / mu_max) * max(1 - 0.08 * max(37 - T, 0), 0)"
[balances]
Xv = "(mu - k_d - k_dl * Lac) * Xv"
Glc = "-q_glc * Xv"
Gln = "-q_gln0 * monod(Gln, 0.5) * Xv - k_deg * Gln"
Lac = "(Y_lacx * mu - k_lc * Lac) * Xv"
Amm = "k_deg * Gln"
P = "q_p * Xv"
"""
)
_A = dict(
    mu_max=0.039, Y_xglc=0.357, Y_lacglc=0.70, KI_amm=6.51, m_glc=0.0692,
    k_d=0.02, beta=1.0, E_a=90000.0, boost=0.15,
)  # fmt: skip
PROCESSES = {  # truth constants per process (related truth) or None (unrelated truth)
    "A": _A,
    "B1": _A | dict(mu_max=0.030, beta=1.6, m_glc=0.05),
    "B2": _A | dict(Y_xglc=0.28, Y_lacglc=1.0, KI_amm=3.5),
    "B3": _A | dict(E_a=180000.0, boost=0.40),
    "B4": _A | dict(k_d=0.035, KI_amm=4.5),
    "U": None,
}
_SCALE = {"B4": 200.0}  # reactor volume (L) of a process at another scale; bolus-fed

HYBRID = (
    '[model]\nname = "cho-glutamine-hybrid"\ntime_unit = "h"\n'
    + _STATES
    + _FEED
    + """[parameters]
mu_max = { value = 0.04, unit = "1/h", bounds = [0.001, 0.2], process_specific = true }
K_glc = { value = 1.0, unit = "mM", fixed = true }
K_gln = { value = 0.1, unit = "mM", fixed = true }
k_d = { value = 0.005, unit = "1/h" }
Y_xglc = { value = 0.35, unit = "1e9 cells/mmol", process_specific = true }
m_glc = { value = 0.05, unit = "mmol/(1e9 cells h)" }
Y_xgln = { value = 1.0, unit = "1e9 cells/mmol" }
m_gln = { value = 0.002, unit = "mmol/(1e9 cells h)" }
Y_ammgln = { value = 0.7, unit = "mol/mol" }
q_lac0 = { value = 0.05, unit = "mmol/(1e9 cells h)", fixed = true }
alpha = { value = 15.0, unit = "mg/1e9 cells" }
beta = { value = 1.0, unit = "mg/(1e9 cells h)", process_specific = true }
[networks.growth]
inputs = ["Lac", "Amm", "T"]
hidden = [16, 16]
output = "positive"
[networks.death]
inputs = ["Lac", "Amm"]
hidden = [16, 16]
output = "positive"
[networks.lactate]
inputs = ["Glc", "Lac", "T"]
hidden = [16, 16]
output = "free"
[networks.production]
inputs = ["T", "Amm"]
hidden = [16, 16]
output = "positive"
[rates]
mu = "mu_max * monod(Glc, K_glc) * monod(Gln, K_gln) * growth"
q_glc = "pirt(mu, Y_xglc, m_glc) * monod(Glc, 0.1)"
q_gln = "pirt(mu, Y_xgln, m_gln) * monod(Gln, 0.05)"
q_p = "luedeking_piret(mu, alpha, beta) * production"
[balances]
Xv = "(mu - k_d * death) * Xv"
Glc = "-q_glc * Xv"
Gln = "-q_gln * Xv"
Lac = "q_lac0 * lactate * Xv"
Amm = "Y_ammgln * mu / Y_xgln * Xv"
P = "q_p * Xv"
"""
)


def truth_model(process: str) -> hx.HybridModel:
    """The ground-truth model of `process` (its constants are batch constants)."""
    return hx.parse_model(RELATED if PROCESSES[process] else UNRELATED, source=f"truth {process}")


def hybrid_model() -> hx.HybridModel:
    """The model a user would write: balances, Monod growth on glucose and glutamine,
    Pirt uptakes, stoichiometric ammonia, Luedeking-Piret titre; networks for the growth
    factor (lactate, ammonia, temperature), death (lactate, ammonia), the lactate rate
    (glucose, lactate, temperature; free sign: production and consumption) and the
    productivity factor (temperature, ammonia)."""
    return hx.parse_model(HYBRID, source="cho-glutamine hybrid")


def refit_model() -> hx.HybridModel:
    """The related truth's equations with its process constants free, starting from A's
    values: the reference "truth's equations refit on the same n batches"."""
    text = RELATED
    for name, value in _A.items():
        unit = re.search(rf'^{name} = {{ unit = "([^"]*)" }}\n', text, re.M)
        text = text.replace(unit.group(0), "")
        text = text.replace(
            "[parameters]\n",
            f'[parameters]\n{name} = {{ value = {value}, unit = "{unit.group(1)}" }}\n',
        )
    return hx.parse_model(text, source="cho-glutamine truth, process constants free")


def truth_simulation(family: hx.Study, process: str, split: str = "test") -> pd.DataFrame:
    """The truth's noise-free values of a process's batches at their measurement times
    (long: batch, time, variable, value)."""
    part = family.select(process=process, split=split)
    batches = part.batches.assign(**(PROCESSES[process] or {}))
    sim = hx.simulate(truth_model(process), hx.Study(part.measurements, part.inputs, batches))
    keys = ["batch", "time", "variable"]
    return sim.merge(part.measurements[keys], on=keys)


def _recipe(rng, batch: str, shift: bool, scale: float | None):
    """Initial measurements, input rows and feed medium of one batch."""
    v0 = (scale or 1.0) * rng.uniform(0.9, 1.1)
    x0 = dict(
        Xv=rng.uniform(0.3, 0.6), Glc=rng.uniform(25, 40), Gln=rng.uniform(4, 8),
        Lac=rng.uniform(0, 3), Amm=rng.uniform(0.2, 1.0), V=v0,
    )  # fmt: skip
    meas = [(batch, 0.0, v, round(x, 4)) for v, x in x0.items()]
    f1 = v0 * rng.uniform(0.0012, 0.0022)  # L/h
    f2 = f1 * rng.uniform(0.6, 1.4)
    t2 = 24.0 * rng.integers(7, 10)
    inputs = [(batch, 0.0, "T", 37.0)]
    if shift:
        inputs.append((batch, 24.0 * rng.integers(4, 8), "T", round(rng.uniform(32.0, 35.0), 1)))
    if scale:  # daily boluses of a day's feed, no continuous feed
        inputs.append((batch, 0.0, "F", 0.0))
        inputs += [
            (batch, t, "Vb", round(24 * (f1 if t < t2 else f2), 4))
            for t in 24.0 * np.arange(3, DAYS)
        ]
    else:
        inputs += [
            (batch, 0.0, "F", 0.0),
            (batch, 72.0, "F", round(f1, 6)),
            (batch, t2, "F", round(f2, 6)),
        ]
    vs = 0.005 if not scale else 0.02
    inputs += [(batch, t, "Vs", vs) for t in 24.0 * np.arange(1, DAYS)]
    return meas, inputs, dict(Sglc=round(rng.uniform(240, 360)), Sgln=round(rng.uniform(25, 45)))


def make_family(seed: int = 0, counts: dict[str, tuple[int, int, int]] | None = None) -> hx.Study:
    """The family as one study, truth constants dropped.

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
        consts = PROCESSES[process] or {}
        meas, inputs, rows = [], [], []
        for i, (split, shift) in enumerate(zip(splits, shifts)):
            b = f"{process}-{i + 1:02d}"
            m, u, feed = _recipe(rng, b, shift, _SCALE.get(process))
            meas, inputs = meas + m, inputs + u
            rows.append(dict(batch=b, process=process, split=split, **feed, **consts))
        study = hx.study_from_frames(
            pd.DataFrame(meas, columns=columns), pd.DataFrame(inputs, columns=columns), rows
        )
        sim = hx.simulate(truth_model(process), study, times={b: times for b in study.batch_names})
        parts.append(
            (
                noisy_measurements(sim, study, rng, NOISE, 5),
                study.inputs,
                study.batches[["batch", "process", "split", "Sglc", "Sgln"]],
            )
        )
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*parts))
    return hx.study_from_frames(meas, inputs, batches, name=NAME)


if __name__ == "__main__":
    family = make_family()
    print(family.batches.groupby(["process", "split"]).size())
    finals = family.measurements.query("time in (168.0, 336.0)").merge(family.batches)
    print(finals.groupby(["process", "time", "variable"])["value"].median().unstack())
