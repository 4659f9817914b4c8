"""hybridxfer: hybrid mechanistic-ML bioreactor models, fitted on one process and
transferred to the next.

Importing hybridxfer turns on JAX float64 (``jax_enable_x64``): bioreactor
balances span many orders of magnitude and float32 gives worse steps and gradients.
"""

import jax

jax.config.update("jax_enable_x64", True)

from .batch_data import BatchData, batch_data  # noqa: E402
from .expressions import ExpressionError  # noqa: E402
from .model import Constant, HybridModel, Input, ModelError, State  # noqa: E402
from .model_file import ModelFileError, load_model, parse_model  # noqa: E402
from .networks import Network, NetworkFactor  # noqa: E402
from .parameters import Parameter, ParameterError  # noqa: E402
from .reactor import Reactor, ReactorError  # noqa: E402
from .simulation import SimulationError, Solver, simulate, solve  # noqa: E402
from .study import Study, StudyError, StudyNeeds, read_study, study_from_frames, write_study  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BatchData",
    "Constant",
    "ExpressionError",
    "HybridModel",
    "Input",
    "ModelError",
    "ModelFileError",
    "Network",
    "NetworkFactor",
    "Parameter",
    "ParameterError",
    "Reactor",
    "ReactorError",
    "SimulationError",
    "Solver",
    "State",
    "Study",
    "StudyError",
    "StudyNeeds",
    "batch_data",
    "load_model",
    "parse_model",
    "read_study",
    "simulate",
    "solve",
    "study_from_frames",
    "write_study",
]
