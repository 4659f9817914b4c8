"""Reports: plots that return matplotlib figures, and ``report.md`` written with them.

matplotlib is imported only when a plot is drawn.
"""

from .networks import plot_network
from .parity import plot_parity, residual_table
from .profile import plot_profile
from .reliability import plot_reliability
from .report import write_report
from .trajectories import plot_history, plot_simulation
from .transfer import plot_transfer

__all__ = [
    "plot_history",
    "plot_network",
    "plot_parity",
    "plot_profile",
    "plot_reliability",
    "plot_simulation",
    "plot_transfer",
    "residual_table",
    "write_report",
]
