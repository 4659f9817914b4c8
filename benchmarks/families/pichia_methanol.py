"""Pichia pastoris (Mut+) glycerol/methanol fed-batch family (a data generator, not part
of the library).

Truth: the unstructured two-substrate model of P. pastoris fed-batch processes with
Monod growth on glycerol, Haldane (Andrews) growth on methanol and AOX1-promoter
driven, growth-associated product formation during methanol induction, as in
Zhang et al. 2000 (Biotechnol. Bioeng. 70:1-8, Haldane methanol kinetics), Jahic et al.
2002 (Bioprocess Biosyst. Eng. 24:385-393, Pirt maintenance on methanol) and Celik,
Calik & Oliver 2009 (Yeast 26:473-484, growth-associated production under methanol
induction); temperature per Jahic et al. 2003 (Microb. Cell Fact. 2:6: lower T slows
growth, raises the product per cell). Time h, X g DCW/L, G and M g/L, P mg/L, V L::

    f_T  = exp(-E_a/R (1/(T + 273.15) - 1/303.15))                 (1 at 30 degC)
    mu_G = mu_Gmax G/(K_G + G) f_T                                 growth on glycerol
    mu_M = mu_Mmax M/(K_M + M + M^2/K_I) f_T                       Haldane on methanol
    q_G  = mu_G/Y_XG;   q_M = mu_M/Y_XM + m_M M/(K_M + M)          (Pirt)
    q_P  = (alpha mu_M + beta M/(K_M + M)) K_R/(K_R + G) (1 + boost max(30 - T, 0))
    dX/dt = (mu_G + mu_M) X - D X;   dG/dt = -q_G X + D (S_g F_g/F - G)
    dM/dt = -q_M X + D (S_m F_m/F - M);  dP/dt = q_P X - D P;  dV/dt = F = F_g + F_m

Fixed values (all processes): mu_Gmax 0.20 1/h, K_G 0.2 g/L, Y_XG 0.60 g/g, K_M 0.3 g/L,
m_M 0.012 g/(g h), beta 0.05 mg/(g h), K_R 0.3 g/L (glycerol repression of P_AOX1).
Source A: mu_Mmax 0.080 1/h, Y_XM 0.40 g/g, K_I 4.0 g/L (growth falls above ~1.1 g/L
methanol), alpha 10 mg/g, E_a 70 kJ/mol (0.63 at 25 degC), boost 0.08 1/degC. These
are representative of the ranges those papers report for Mut+ strains (mu_Mmax
0.05-0.09 1/h, Y_XM 0.3-0.45 g/g, K_I a few g/L); they are set here, not refitted.

Related targets differ from A in batch constants only:

- ``B1`` rates: a high-copy clone, slower on methanol (mu_Mmax 0.060), more product per
  biomass (alpha 16);
- ``B2`` yield and methanol tolerance: Y_XM 0.33, K_I 1.5 g/L;
- ``B3`` temperature response: E_a 140 kJ/mol and boost 0.20 1/degC.

The unrelated target ``U`` is a Mut^s strain with its own truth: Monod (not
inhibited) slow methanol growth (0.025 1/h), methanol toxicity as a death rate
(k_dM M), non-growth-associated production and proteolytic product degradation that
rises with temperature; growth has no temperature response. Its methanol feed is a
third of the others' (Mut^s recipes feed less).

Recipes (2 L bench scale, 6 days): random seeding (X0 0.3-0.8 g/L, glycerol 35-45 g/L,
V0 1.6-2.4 L); glycerol batch, then a glycerol fed-batch (50% w/v, S_g 630 g/L) of 3-6 h
from 18-24 h; methanol induction (pure methanol, S_m 790 g/L) from its end with an
exponential feed at a planned growth rate mu0 of 0.015-0.045 1/h (as in Celik et al.
2009), sized on nominal yields, on a 2 h grid and capped at 7 mL/h per L of V0; mu0
x0.6-1.3 on day 3 or 4; 30 degC, shifted at induction or up to a day later to 24-27
degC in 3 of every 4 batches (feed and mu0 x0.65 then); one methanol pulse (1-4 g/L,
an uptake test) 0.25-1.5 h before one daily sample; where a daily sample finds
methanol above 2 g/L the operator stops the feed for a day and resumes it halved.
Daily offline samples of X, G, M, P (P not at t = 0), 5% multiplicative noise (dry
weight, HPLC and GC assays), each withdrawing 10 mL. In A methanol stays below 1 g/L
(inhibition is barely seen in the source); in the targets pulses and some feeds exceed
the lower capacity (M up to a few g/L, one B3 batch runs away to 30 g/L).

The hybrid model (:func:`hybrid_model`) solves with the default Tsit5 solver.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

import hybridxfer as hx

from ._common import default_counts, noisy_measurements, splits_and_shifts

NAME = "pichia-methanol"
CITATION = (
    "Haldane methanol kinetics (Zhang et al. 2000, Biotechnol. Bioeng. 70:1-8), Pirt "
    "maintenance (Jahic et al. 2002, Bioprocess Biosyst. Eng. 24:385-393), growth-"
    "associated production under induction (Celik, Calik & Oliver 2009, Yeast 26:473-484)"
)
SOURCE = "A"
RELATED_TARGETS = ("B1", "B2", "B3")
UNRELATED_TARGETS = ("U",)
SCORED = ("X", "P")
DAYS, NOISE, SAMPLE_VOLUME, ALARM = 6, 0.05, 0.010, 2.0
SG, SM = 630.0, 790.0  # feed media: 50% w/v glycerol, methanol (g/L)

HEADER = """
[states]
X = { unit = "g/L" }
G = { unit = "g/L" }
M = { unit = "g/L" }
P = { unit = "mg/L", initial = 0.0 }
[inputs]
Fg = { unit = "L/h" }
Fm = { unit = "L/h" }
T  = { unit = "degC" }
Vs = { unit = "L" }
Vb = { unit = "L" }
[reactor]
mode = "fed-batch"
volume = "V"
feed_rate = "Fg + Fm"
feed = { G = "Sg * Fg / (Fg + Fm + 1e-9)", M = "Sm * Fm / (Fg + Fm + 1e-9)" }
withdrawal = "Vs"
bolus = { volume = "Vb", M = "Sm" }
[constants]
Sg = { unit = "g/L" }
Sm = { unit = "g/L" }
"""
RELATED = (
    '[model]\nname = "pichia-related-truth"\ntime_unit = "h"\n'
    + HEADER
    + """mu_Mmax = { unit = "1/h" }
Y_XM = { unit = "g/g" }
K_I = { unit = "g/L" }
alpha = { unit = "mg/g" }
E_a = { unit = "J/mol" }
boost = { unit = "1/degC" }
[parameters]
mu_Gmax = { value = 0.20, unit = "1/h" }
K_G = { value = 0.2, unit = "g/L" }
Y_XG = { value = 0.60, unit = "g/g" }
K_M = { value = 0.3, unit = "g/L" }
m_M = { value = 0.012, unit = "g/(g h)" }
beta = { value = 0.05, unit = "mg/(g h)" }
K_R = { value = 0.3, unit = "g/L" }
[rates]
f_T = "arrhenius(T + 273.15, E_a, 303.15)"
mu_G = "mu_Gmax * monod(G, K_G) * f_T"
mu_M = "mu_Mmax * haldane(M, K_M, K_I) * f_T"
q_M = "mu_M / Y_XM + m_M * monod(M, K_M)"
q_P = "(alpha * mu_M + beta * monod(M, K_M)) * K_R / (K_R + G) * (1 + boost * max(30 - T, 0))"
[balances]
X = "(mu_G + mu_M) * X"
G = "-mu_G / Y_XG * X"
M = "-q_M * X"
P = "q_P * X"
"""
)
UNRELATED = (
    '[model]\nname = "pichia-unrelated-truth"\ntime_unit = "h"\n'
    + HEADER
    + """[parameters]
mu_Gmax = { value = 0.18, unit = "1/h" }
K_G = { value = 0.2, unit = "g/L" }
Y_XG = { value = 0.55, unit = "g/g" }
mu_Mmax = { value = 0.025, unit = "1/h" }
K_M = { value = 1.0, unit = "g/L" }
Y_XM = { value = 0.35, unit = "g/g" }
m_M = { value = 0.02, unit = "g/(g h)" }
k_dM = { value = 0.002, unit = "L/(g h)" }
q_P0 = { value = 0.8, unit = "mg/(g h)" }
K_R = { value = 0.3, unit = "g/L" }
k_deg = { value = 0.01, unit = "1/h" }
[rates]
mu_G = "mu_Gmax * monod(G, K_G)"
mu_M = "mu_Mmax * monod(M, K_M)"
q_M = "mu_M / Y_XM + m_M * monod(M, K_M)"
q_P = "q_P0 * monod(M, 0.5) * K_R / (K_R + G)"
deg = "k_deg * exp(0.15 * (T - 30))"
[balances]
X = "(mu_G + mu_M - k_dM * M) * X"
G = "-mu_G / Y_XG * X"
M = "-q_M * X"
P = "q_P * X - deg * P"
"""
)
SOURCE_CONSTANTS = dict(mu_Mmax=0.080, Y_XM=0.40, K_I=4.0, alpha=10.0, E_a=70000.0, boost=0.08)
PROCESSES = {  # truth constants per process (related truth) or None (unrelated truth)
    "A": SOURCE_CONSTANTS,
    "B1": SOURCE_CONSTANTS | dict(mu_Mmax=0.060, alpha=16.0),
    "B2": SOURCE_CONSTANTS | dict(Y_XM=0.33, K_I=1.5),
    "B3": SOURCE_CONSTANTS | dict(E_a=140000.0, boost=0.20),
    "U": None,
}
FEED_CONSTANTS = ("Sg", "Sm")

HYBRID = (
    '[model]\nname = "pichia-methanol-hybrid"\ntime_unit = "h"\n'
    + HEADER
    + """[parameters]
mu_G = { value = 0.2, unit = "1/h", bounds = [0.02, 0.6] }
K_G = { value = 0.2, unit = "g/L", fixed = true }
Y_XG = { value = 0.5, unit = "g/g", bounds = [0.2, 0.9] }
mu_M = { value = 0.06, unit = "1/h", bounds = [0.005, 0.3] }
K_M = { value = 0.2, unit = "g/L", fixed = true }
Y_XM = { value = 0.35, unit = "g/g", bounds = [0.1, 0.7] }
q_Pmax = { value = 0.5, unit = "mg/(g h)" }
[networks.methanol]
inputs = ["M"]
hidden = [8, 8]
output = "positive"
[networks.temperature]
inputs = ["T"]
hidden = [8, 8]
output = "positive"
[networks.production]
inputs = ["M", "G", "T"]
hidden = [16, 16]
output = "positive"
[rates]
mu_g = "mu_G * monod(G, K_G) * temperature"
mu_m = "mu_M * monod(M, K_M) * methanol * temperature"
[balances]
X = "(mu_g + mu_m) * X"
G = "-mu_g / Y_XG * X"
M = "-mu_m / Y_XM * X"
P = "q_Pmax * production * X"
"""
)


def truth_model(process: str) -> hx.HybridModel:
    """The ground-truth model of `process` (its constants are batch constants)."""
    text = RELATED if PROCESSES[process] else UNRELATED
    return hx.parse_model(text, source=f"pichia truth {process}")


def hybrid_model() -> hx.HybridModel:
    """The model a user would write: balances, Monod growth on glycerol and methanol with
    fitted maximal rates and yields, and three networks for what a user would not know:
    the methanol response (inhibition) of growth, a temperature factor of growth, and
    the specific production rate (from methanol, glycerol and temperature)."""
    return hx.parse_model(HYBRID, source="pichia hybrid")


def refit_model() -> hx.HybridModel:
    """The related truth's equations with its process constants free, starting at A's
    values (the feed concentrations stay batch constants)."""
    text = RELATED
    for name, value in SOURCE_CONSTANTS.items():
        unit = re.search(rf'^{name} = {{ unit = "([^"]*)" }}\n', text, re.M)
        text = text.replace(unit.group(0), "")
        text = text.replace(
            "[parameters]\n",
            f'[parameters]\n{name} = {{ value = {value}, unit = "{unit.group(1)}" }}\n',
        )
    return hx.parse_model(text, source="pichia related truth, process constants free")


def truth_simulation(family: hx.Study, process: str, split: str = "test") -> pd.DataFrame:
    """The truth's noise-free values of a process's batches at their measurement times."""
    part = family.select(process=process, split=split)
    batches = part.batches.assign(**(PROCESSES[process] or {}))
    return hx.simulate(truth_model(process), hx.Study(part.measurements, part.inputs, batches))


def _recipe(rng, shift: bool, feed_scale: float) -> dict:
    """One batch's recipe: seeding, glycerol and methanol feeding, temperature."""
    r = dict(X=rng.uniform(0.3, 0.8), G=rng.uniform(35, 45), V=rng.uniform(1.6, 2.4))
    r["t_g"] = round(rng.uniform(18, 24), 1)
    r["t_ind"] = round(r["t_g"] + rng.uniform(3, 6), 1)
    r["fg"] = round(r["V"] * rng.uniform(0.008, 0.014), 5)
    # exponential methanol feed at a planned growth rate mu0 (Celik et al. 2009), sized
    # on a planned biomass at induction with nominal yields 0.5 (glycerol), 0.4 (methanol)
    glycerol = r["G"] * r["V"] + r["fg"] * SG * (r["t_ind"] - r["t_g"])
    r["mu0"] = feed_scale * rng.uniform(0.015, 0.045)
    r["F0"] = (r["mu0"] / 0.4 + 0.012) * 0.5 * glycerol / SM
    r["cap"] = r["V"] * 0.007 * feed_scale
    r["t_change"] = 24.0 * rng.integers(3, 5) + 2.0 * rng.integers(0, 4)
    r["change"] = rng.uniform(0.6, 1.3)
    r["t_shift"] = 2.0 * np.ceil(r["t_ind"] / 2 + rng.integers(0, 13)) if shift else None
    r["T"] = round(rng.uniform(24, 27), 1)
    # a methanol pulse (uptake test, Wurm & Spadiut) a little before one daily sample
    r["pulse_day"] = int(rng.integers(2, DAYS))
    r["t_pulse"] = round(24.0 * r["pulse_day"] - rng.uniform(0.25, 1.5), 2)
    r["Vb"] = round(rng.uniform(1.0, 4.0) * 1.4 * r["V"] / SM, 5)
    r["alarms"] = []
    return r


def _inputs(batch: str, r: dict) -> list[tuple]:
    """Input rows of a recipe: the methanol feed on a 2 h grid, stopped for a day and
    halved (with its growth rate) at each daily sample that found methanol above
    `ALARM` (the operator's response), the feed and its growth rate x0.65 at a temperature shift."""
    rows = [(0.0, "Fg", 0.0), (r["t_g"], "Fg", r["fg"]), (r["t_ind"], "Fg", 0.0)]
    rows += [(0.0, "Fm", 0.0), (0.0, "T", 30.0)]
    if r["t_shift"] is not None:
        rows.append((r["t_shift"], "T", r["T"]))
    grid = [r["t_ind"], *np.arange(2.0 * np.ceil(r["t_ind"] / 2 + 0.01), 24.0 * DAYS, 2.0)]
    log_f, mu, paused = np.log(r["F0"]), r["mu0"], -1.0
    for t, t_next in zip(grid, [*grid[1:], 24.0 * DAYS]):
        mu *= r["change"] if t == r["t_change"] else 1.0
        if t == r["t_shift"]:
            log_f, mu = log_f + np.log(0.65), mu * 0.65
        if t in r["alarms"]:
            paused, log_f, mu = t + 24.0, log_f - np.log(2.0), mu / 2
        if t < paused:
            rows.append((t, "Fm", 0.0))
            continue
        rows.append((t, "Fm", round(min(np.exp(log_f), r["cap"]), 6)))
        log_f += mu * (t_next - t)
    rows += [(24.0 * d, "Vs", SAMPLE_VOLUME) for d in range(1, DAYS)]
    rows += [(0.0, "Vb", 0.0), (r["t_pulse"], "Vb", r["Vb"])]
    return [(batch, t, v, x) for t, v, x in rows]


def _simulate(process: str, recipes: dict, rows: list[dict]) -> tuple[hx.Study, pd.DataFrame]:
    """The batches of one process and the truth's values at the daily sample times."""
    columns = ["batch", "time", "variable", "value"]
    meas = [(b, 0.0, v, round(r[v], 3)) for b, r in recipes.items() for v in ("X", "G", "V")]
    meas += [(b, 0.0, "M", 0.0) for b in recipes]
    inputs = [row for b, r in recipes.items() for row in _inputs(b, r)]
    study = hx.study_from_frames(
        pd.DataFrame(meas, columns=columns), pd.DataFrame(inputs, columns=columns), rows
    )
    times = np.arange(0, DAYS + 1) * 24.0
    return study, hx.simulate(truth_model(process), study, times={b: times for b in recipes})


def make_family(seed: int = 0, counts: dict[str, tuple[int, int, int]] | None = None) -> hx.Study:
    """The family as one study, truth constants dropped.

    Args:
        seed: noise and recipe seed.
        counts: per process (train, valid, test) batch counts; default A (8, 2, 0) and
            every target (12, 0, 6).
    """
    counts = counts or default_counts(PROCESSES, SOURCE)
    rng = np.random.default_rng(seed)
    parts = []
    for process, count in counts.items():
        splits, shifts = splits_and_shifts(rng, count)
        consts = PROCESSES[process]
        recipes = {
            f"{process}-{i + 1:02d}": _recipe(rng, shift, 1.0 if consts else 1 / 3)
            for i, shift in enumerate(shifts)
        }
        rows = [
            dict(batch=b, process=process, split=s, Sg=SG, Sm=SM, **(consts or {}))
            for b, s in zip(recipes, splits)
        ]
        study, sim = _simulate(process, recipes, rows)
        for _ in range(DAYS - 1):  # the operator's response to methanol found high
            high = sim.query("variable == 'M' and value > @ALARM and time > 0")
            new: dict[str, float] = {}
            for b, t in zip(high["batch"], high["time"]):
                if t > max(recipes[b]["alarms"], default=0.0):
                    new[b] = min(t, new.get(b, t))
            if not new:
                break
            for b, t in new.items():
                recipes[b]["alarms"].append(t)
            study, sim = _simulate(process, recipes, rows)
        parts.append(
            (
                noisy_measurements(sim, study, rng, NOISE, 4),
                study.inputs,
                study.batches[["batch", "process", "split", *FEED_CONSTANTS]],
            )
        )
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*parts))
    return hx.study_from_frames(meas, inputs, batches, name=NAME)


if __name__ == "__main__":
    family = make_family()
    print(family.batches.groupby(["process", "split"]).size())
    wide = family.measurements.merge(family.batches[["batch", "process"]])
    print(wide.groupby(["process", "variable", "time"])["value"].median().unstack().round(2))
