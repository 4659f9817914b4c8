"""hybridxfer: hybrid mechanistic-ML bioreactor models, fitted on one process and
transferred to the next.

Importing hybridxfer turns on JAX float64 (``jax_enable_x64``): bioreactor
balances span many orders of magnitude and float32 gives worse steps and gradients.
"""

import jax

jax.config.update("jax_enable_x64", True)

from ._core.expressions import ExpressionError  # noqa: E402
from ._core.model import Constant, HybridModel, Input, ModelError, Observation, State  # noqa: E402
from ._core.networks import Network, NetworkFactor  # noqa: E402
from ._core.parameters import Parameter, ParameterError  # noqa: E402
from ._core.reactor import Reactor, ReactorError  # noqa: E402
from ._data.batch_data import BatchData, batch_data  # noqa: E402
from ._data.metrics import nrmse, relative_rmse  # noqa: E402
from ._data.study import Study, StudyError, StudyNeeds, read_study, study_from_frames, write_study  # noqa: E402
from ._fit.engine import FitConfig, FitError, FitResult, FitStep, fit  # noqa: E402
from ._fit.intervals import parameter_table  # noqa: E402
from ._fit.plan import Plan  # noqa: E402
from ._io.model_file import ModelFileError, load_model, parse_model, to_toml  # noqa: E402
from ._io.saved_model import SavedModelError, load_fit, save_fit, save_transfer  # noqa: E402
from ._report.report import plot_networks, plot_transfer, rates_along, write_report  # noqa: E402
from ._solve.simulation import SimulationError, Solver, simulate, solve  # noqa: E402
from ._transfer.transfer import (  # noqa: E402
    STRATEGIES,
    Similarity,
    TransferResult,
    anchor_sd,
    candidate_plans,
    transfer,
)
from ._twin.filter import DigitalTwin, TwinError  # noqa: E402
from ._twin.stream import read_stream, replay  # noqa: E402
from ._uncertainty.prediction import predict  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BatchData",
    "Constant",
    "ExpressionError",
    "DigitalTwin",
    "FitConfig",
    "FitError",
    "FitResult",
    "FitStep",
    "HybridModel",
    "Input",
    "ModelError",
    "ModelFileError",
    "Network",
    "NetworkFactor",
    "Observation",
    "Parameter",
    "ParameterError",
    "Plan",
    "Reactor",
    "ReactorError",
    "STRATEGIES",
    "SavedModelError",
    "Similarity",
    "SimulationError",
    "Solver",
    "State",
    "Study",
    "StudyError",
    "StudyNeeds",
    "TransferResult",
    "TwinError",
    "anchor_sd",
    "batch_data",
    "candidate_plans",
    "fit",
    "load_fit",
    "load_model",
    "nrmse",
    "parameter_table",
    "parse_model",
    "plot_networks",
    "plot_transfer",
    "predict",
    "rates_along",
    "read_stream",
    "read_study",
    "relative_rmse",
    "replay",
    "save_fit",
    "save_transfer",
    "simulate",
    "solve",
    "study_from_frames",
    "to_toml",
    "transfer",
    "write_report",
    "write_study",
]
