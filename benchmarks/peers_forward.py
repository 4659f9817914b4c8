"""Forward simulation of the peers task's 20 batches to a DataFrame, warm, at the fit's
start model (no fit): ``hybridxfer.simulate`` beside the peer's ``predict_dataset`` and
a vectorised long table (as ``benchmarks/peers.py`` measures it after its fit). Prints
the median of 15 warm calls in ms; run each library in a fresh process, interleaved:

    PYTHONPATH=. python benchmarks/peers_forward.py hybridxfer
    PYTHONPATH=. python benchmarks/peers_forward.py peer
"""

import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import hybridxfer as hx  # noqa: E402

sys.path.insert(0, "benchmarks")
import peers as P  # noqa: E402

lib = sys.argv[1]
if lib == "peer" and not P.peer_installed():
    sys.exit("jax-hybridmodels is not installed (pip install '.[bench]')")
fit_study, test, forward = P.task_studies()
model = P.start_model(hx.load_model(P.demo_model_path()), fit_study, 0)
if lib == "hybridxfer":
    f = lambda: hx.simulate(model, forward)  # noqa: E731
else:
    port = P.port_from_model(model)
    ds, solver = P.peer_dataset(forward), P.peer_solver(hx.Solver())
    f = lambda: P.peer_frame(port, ds, forward, solver)  # noqa: E731
for _ in range(3):
    f()
ts = []
for _ in range(15):
    t = time.perf_counter()
    f()
    ts.append(time.perf_counter() - t)
print(f"{lib} {1e3 * statistics.median(ts):.1f}")
