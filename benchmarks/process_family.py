"""Ground-truth process family for the transfer benchmark (not part of the library).

One *related* truth (the demo truth, ``hybridxfer/data/demo_truth.toml``, with the
temperature response E_a and boost as batch constants too) serves the source A and
the related targets, which differ from A in batch constants only:

- ``B``:  the demo's target: lower mu_max and yield, stronger lactate inhibition,
  higher non-growth production beta (several shifts at once);
- ``B1``: rates: lower mu_max, higher beta;
- ``B2``: yield and inhibition: lower Y_xglc, smaller K_lac;
- ``B3``: temperature response: doubled E_a and a stronger low-temperature titre boost.

The *unrelated* target ``U`` has its own truth with a different kinetic structure:
Haldane (substrate-inhibited) growth on glucose, no temperature effect on growth,
death rising with lactate, lactate consumed once glucose runs low, and
non-growth-associated production that *drops* at low temperature.

Recipes as in ``hybridxfer.demo.generate_demo_study``: random seeding (Xv, Glc, Lac,
V), feed medium Sf, feed from day 3 with a change on day 8, and a temperature shift
(day 4-7, to 32-35 degC) in 3 of every 4 batches of each split (which ones: random;
the demo draws each batch's shift on its own, with probability 3/4); 14 days. Offline
samples every `SAMPLE_EVERY` days (all of Xv, Glc, Lac, P; titre not at t = 0), 5%
multiplicative noise; each sample withdraws 5 mL.

Why exactly 3 of 4: at 37 degC the temperature terms are 1, so an unshifted batch of B3
is a batch of A. Drawn one by one, B3's pool of 12 held 6 shifted batches (its 6 test
batches 5), and 4 of the transfer benchmark's 5 seeds drew two unshifted batches at
n = 2: training data that cannot show what differs.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

import hybridxfer as hx

try:
    from families._common import default_counts, noisy_measurements, splits_and_shifts
except ImportError:  # imported as benchmarks.process_family
    from benchmarks.families._common import default_counts, noisy_measurements, splits_and_shifts

DAYS, SAMPLE_EVERY, NOISE, SAMPLE_VOLUME = 14, 2, 0.05, 0.005
STATES = """
[states]
Xv  = { unit = "1e9 cells/L" }
Glc = { unit = "mM" }
Lac = { unit = "mM" }
P   = { unit = "mg/L", initial = 0.0 }
[inputs]
F  = { unit = "L/h" }
T  = { unit = "degC" }
Vs = { unit = "L" }
[reactor]
mode = "fed-batch"
volume = "V"
feed_rate = "F"
feed = { Glc = "Sf" }
withdrawal = "Vs"
"""
RELATED = (
    '[model]\nname = "family-related-truth"\ntime_unit = "h"\n'
    + STATES
    + """
[constants]
Sf = { unit = "mM" }
mu_max = { unit = "1/h" }
Y_xglc = { unit = "1e9 cells/mmol" }
K_lac = { unit = "mM" }
beta = { unit = "mg/(1e9 cells h)" }
E_a = { unit = "J/mol" }
boost = { unit = "1/degC" }
[parameters]
K_glc = { value = 1.0, unit = "mM" }
k_d = { value = 0.004, unit = "1/h" }
m_glc = { value = 0.01, unit = "mmol/(1e9 cells h)" }
Y_lac = { value = 0.4, unit = "mol/mol" }
alpha = { value = 20.0, unit = "mg/1e9 cells" }
[rates]
f_T = "arrhenius(T + 273.15, E_a, 310.15)"
mu = "mu_max * monod(Glc, K_glc) * noncompetitive_inhibition(Lac, K_lac) * f_T"
q_glc = "pirt(mu, Y_xglc, m_glc) * monod(Glc, 0.05)"
q_p = "luedeking_piret(mu, alpha, beta) * (1 + boost * max(37 - T, 0))"
[balances]
Xv = "(mu - k_d) * Xv"
Glc = "-q_glc * Xv"
Lac = "Y_lac * q_glc * Xv"
P = "q_p * Xv"
"""
)
UNRELATED = (
    '[model]\nname = "family-unrelated-truth"\ntime_unit = "h"\n'
    + STATES
    + """
[constants]
Sf = { unit = "mM" }
[parameters]
mu_max = { value = 0.07, unit = "1/h" }
K_glc = { value = 2.0, unit = "mM" }
K_i = { value = 40.0, unit = "mM" }
k_d = { value = 0.003, unit = "1/h" }
k_dl = { value = 0.0003, unit = "1/(mM h)" }
Y_xglc = { value = 0.3, unit = "1e9 cells/mmol" }
m_glc = { value = 0.02, unit = "mmol/(1e9 cells h)" }
Y_lac = { value = 0.6, unit = "mol/mol" }
q_lac = { value = 0.06, unit = "mmol/(1e9 cells h)" }
q_p0 = { value = 1.2, unit = "mg/(1e9 cells h)" }
[rates]
mu = "mu_max * haldane(Glc, K_glc, K_i)"
death = "k_d + k_dl * Lac"
q_glc = "pirt(mu, Y_xglc, m_glc) * monod(Glc, 0.05)"
q_lc = "q_lac * monod(Lac, 1.0) * K_glc / (K_glc + Glc)"
q_p = "q_p0 * max(1 - 0.1 * max(37 - T, 0), 0)"
[balances]
Xv = "(mu - death) * Xv"
Glc = "-q_glc * Xv"
Lac = "(Y_lac * q_glc - q_lc) * Xv"
P = "q_p * Xv"
"""
)
SOURCE = dict(mu_max=0.040, Y_xglc=0.35, K_lac=30.0, beta=0.4, E_a=60000.0, boost=0.25)
PROCESSES = {  # truth constants per process (related truth) or None (unrelated truth)
    "A": SOURCE,
    "B": SOURCE | dict(mu_max=0.032, Y_xglc=0.30, K_lac=20.0, beta=0.7),
    "B1": SOURCE | dict(mu_max=0.030, beta=0.8),
    "B2": SOURCE | dict(Y_xglc=0.26, K_lac=12.0),
    "B3": SOURCE | dict(E_a=120000.0, boost=0.6),
    "U": None,
}
RELATED_TARGETS, UNRELATED_TARGETS = ("B", "B1", "B2", "B3"), ("U",)


def _recipe(rng, batch: str, shift: bool):
    """Initial measurements, input rows and the feed medium of one batch (with a
    temperature shift if `shift`)."""
    x0 = dict(Xv=rng.uniform(0.25, 0.45), Glc=rng.uniform(30, 45), Lac=rng.uniform(0, 2))
    x0["V"] = rng.uniform(0.9, 1.1)
    meas = [(batch, 0.0, v, round(x, 3)) for v, x in x0.items()]
    f1 = round(rng.uniform(0.0012, 0.0025), 5)
    f2 = round(f1 * rng.uniform(0.7, 1.3), 5)
    inputs = [(batch, 0.0, "F", 0.0), (batch, 72.0, "F", f1), (batch, 192.0, "F", f2)]
    inputs.append((batch, 0.0, "T", 37.0))
    if shift:
        inputs.append((batch, 24.0 * rng.integers(4, 8), "T", round(rng.uniform(32.0, 35.0), 1)))
    samples = np.arange(SAMPLE_EVERY, DAYS, SAMPLE_EVERY) * 24.0
    inputs += [(batch, t, "Vs", SAMPLE_VOLUME) for t in samples]
    return meas, inputs, round(rng.uniform(250, 450))


def truth_model(process: str) -> hx.HybridModel:
    """The ground-truth model of `process` (its constants are batch constants)."""
    return hx.parse_model(RELATED if PROCESSES[process] else UNRELATED, source=f"truth {process}")


def refit_model() -> hx.HybridModel:
    """The related truth's equations with its process constants (all but the feed's
    Sf) as free parameters starting from A's values: what a model that knew the
    equations could learn of a target from its batches (a reference for transfer)."""
    text = RELATED
    for name in SOURCE:
        unit = re.search(rf'^{name} = {{ unit = "([^"]*)" }}\n', text, re.M)
        text = text.replace(unit.group(0), "")
        text = text.replace(
            "[parameters]\n",
            f'[parameters]\n{name} = {{ value = {SOURCE[name]}, unit = "{unit.group(1)}" }}\n',
        )
    return hx.parse_model(text, source="related truth, process constants free")


def truth_simulation(family: hx.Study, process: str, split: str = "test") -> pd.DataFrame:
    """The truth's noise-free simulation of a process's batches at their measurement
    times: its NRMSE against the measurements is the floor set by their noise."""
    part = family.select(process=process, split=split)
    batches = part.batches.assign(**(PROCESSES[process] or {}))
    return hx.simulate(truth_model(process), hx.Study(part.measurements, part.inputs, batches))


def make_family(seed: int = 0, counts: dict[str, tuple[int, int, int]] | None = None) -> hx.Study:
    """The family as one study, truth constants dropped.

    Args:
        seed: noise and recipe seed.
        counts: per process (train, valid, test) batch counts; default A (8, 2, 0)
            and every target (12, 0, 6): a pool of 12 to draw training batches from
            and 6 fixed test batches.
    """
    counts = counts or default_counts(PROCESSES, "A")
    rng = np.random.default_rng(seed)
    times = np.arange(0, DAYS + 1, SAMPLE_EVERY) * 24.0
    columns = ["batch", "time", "variable", "value"]
    parts = []
    for process, count in counts.items():
        splits, shifts = splits_and_shifts(rng, count)
        consts = PROCESSES[process]
        meas, inputs, rows = [], [], []
        for i, (split, shift) in enumerate(zip(splits, shifts)):
            b = f"{process}-{i + 1:02d}"
            m, u, sf = _recipe(rng, b, shift)
            meas, inputs = meas + m, inputs + u
            rows.append(dict(batch=b, process=process, split=split, Sf=sf, **(consts or {})))
        study = hx.study_from_frames(
            pd.DataFrame(meas, columns=columns), pd.DataFrame(inputs, columns=columns), rows
        )
        sim = hx.simulate(truth_model(process), study, times={b: times for b in study.batch_names})
        parts.append(
            (
                noisy_measurements(sim, study, rng, NOISE, 4),
                study.inputs,
                study.batches[["batch", "process", "split", "Sf"]],
            )
        )
    meas, inputs, batches = (pd.concat(t, ignore_index=True) for t in zip(*parts))
    return hx.study_from_frames(meas, inputs, batches, name="process-family")


if __name__ == "__main__":
    family = make_family()
    print(family.batches.groupby(["process", "split"]).size())
    finals = family.measurements.query("time == @DAYS * 24")
    print(finals.merge(family.batches).groupby(["process", "variable"])["value"].median().unstack())
