"""The library's default solver settings as plain numbers, readable without importing
diffrax (the command line's help states them): :data:`DEFAULT` (simulation,
prediction, reports) and :data:`TRAINING` (a fit's solves), each with the solver
``"tsit5"``. :class:`hybridxfer.Solver`'s defaults are these settings.
"""

__all__ = ["DEFAULT", "TRAINING"]

DEFAULT = dict(name="tsit5", rtol=1e-6, atol=1e-9, max_steps=4096)
"""Simulation, prediction and the reports' rates: rtol, atol [state units], step
budget per solve segment."""

TRAINING = dict(name="tsit5", rtol=1e-5, atol=1e-8, max_steps=1024)
"""A fit's training solves (``FitConfig.solver``)."""
