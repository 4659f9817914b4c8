"""hybridxfer: hybrid mechanistic-ML bioreactor models, fitted on one process and
transferred to the next.

Importing hybridxfer turns on JAX float64 (``jax_enable_x64``): bioreactor
balances span many orders of magnitude and float32 gives worse steps and gradients.

The names below are what a user calls. Models and model files are imported with the
package; studies, solving, fitting, transfer, saved models, the digital twin and the
plots (which import pandas, diffrax, optax and matplotlib) on first use of one of
their names (PEP 562). Array-level tools are in :mod:`hybridxfer.arrays`.
"""

import importlib
import importlib.metadata

import jax

jax.config.update("jax_enable_x64", True)

from ._core.expressions import ExpressionError  # noqa: E402
from ._core.model import Constant, HybridModel, Input, ModelError, Observation, State  # noqa: E402
from ._core.networks import Network  # noqa: E402
from ._core.parameters import Parameter, ParameterError  # noqa: E402
from ._core.reactor import (  # noqa: E402
    AbstractReactor,
    Batch,
    Chemostat,
    FedBatch,
    Perfusion,
    ReactorError,
)
from ._io.model_file import ModelFileError, load_model, parse_model, to_toml  # noqa: E402

__version__ = importlib.metadata.version("hybridxfer")

_LAZY = {  # module: the names it gives, imported on first use
    "._data.study": ("Study", "StudyError", "read_study", "study_from_frames", "write_study"),
    "._data.metrics": ("nrmse", "relative_rmse"),
    "._solve": ("SimulationError", "Solver", "simulate"),
    "._solve.rates": ("rates_along",),
    "._fit": (
        "FitConfig",
        "FitError",
        "FitResult",
        "Plan",
        "Validation",
        "fit",
        "parameter_table",
        "profile_likelihood",
    ),
    "._uncertainty": ("predict", "reliability"),
    "._io.saved_model": ("SavedModelError", "load_fit", "save_fit", "write_record"),
    "._transfer": ("STRATEGIES", "Similarity", "TransferResult", "save_transfer", "transfer"),
    "._twin.filter": ("DigitalTwin", "TwinError", "TwinWarning"),
    "._twin.stream": ("read_stream", "replay"),
    "._scale": (
        "CallJob",
        "FitJob",
        "JobError",
        "PredictJob",
        "SweepError",
        "TransferJob",
        "keep_compiled_programs",
        "read_sweep",
        "run_many",
        "run_sweep",
    ),
    "._report": (
        "plot_history",
        "plot_network",
        "plot_parity",
        "plot_profile",
        "plot_reliability",
        "plot_simulation",
        "plot_transfer",
        "residual_table",
        "write_report",
    ),
}
_ORIGIN = {name: module for module, names in _LAZY.items() for name in names}
_SUBMODULES = ("arrays",)


def __getattr__(name: str):
    """A name of :data:`_LAZY` (imported now, then kept) or a public submodule."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _ORIGIN:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_ORIGIN[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})


__all__ = [
    "AbstractReactor",
    "Batch",
    "CallJob",
    "Chemostat",
    "Constant",
    "DigitalTwin",
    "ExpressionError",
    "FedBatch",
    "FitConfig",
    "FitError",
    "FitJob",
    "FitResult",
    "HybridModel",
    "Input",
    "JobError",
    "ModelError",
    "ModelFileError",
    "Network",
    "Observation",
    "Parameter",
    "ParameterError",
    "Perfusion",
    "Plan",
    "PredictJob",
    "ReactorError",
    "STRATEGIES",
    "SavedModelError",
    "Similarity",
    "SimulationError",
    "Solver",
    "State",
    "Study",
    "StudyError",
    "SweepError",
    "TransferJob",
    "TransferResult",
    "TwinError",
    "TwinWarning",
    "Validation",
    "fit",
    "keep_compiled_programs",
    "load_fit",
    "load_model",
    "nrmse",
    "parameter_table",
    "parse_model",
    "plot_history",
    "plot_network",
    "plot_parity",
    "plot_profile",
    "plot_reliability",
    "plot_simulation",
    "plot_transfer",
    "predict",
    "profile_likelihood",
    "rates_along",
    "read_stream",
    "read_study",
    "read_sweep",
    "relative_rmse",
    "reliability",
    "replay",
    "residual_table",
    "run_many",
    "run_sweep",
    "save_fit",
    "save_transfer",
    "simulate",
    "study_from_frames",
    "to_toml",
    "transfer",
    "write_record",
    "write_report",
    "write_study",
]
