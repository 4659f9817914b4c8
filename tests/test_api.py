"""The public API: what ``import hybridxfer`` gives, loaded on first use where heavy."""

import importlib.metadata
import subprocess
import sys

import pytest

import hybridxfer as hx

PLUMBING = (  # array-level tools (hybridxfer.arrays) and internals, not the user's API
    "BatchData",
    "batch_data",
    "solve",
    "StudyNeeds",
    "anchor_sd",
    "candidate_plans",
    "NetworkFactor",
    "FitStep",
)


def test_every_public_name_resolves_and_dir_lists_it():
    assert len(set(hx.__all__)) == len(hx.__all__)
    missing = [name for name in hx.__all__ if getattr(hx, name, None) is None]
    assert not missing
    assert set(hx.__all__) | {"arrays", "__version__"} <= set(dir(hx))


def test_plumbing_is_not_public_but_in_arrays():
    assert not [name for name in PLUMBING if name in hx.__all__ or hasattr(hx, name)]
    assert hx.arrays.__all__ == ["BatchData", "batch_data", "solve"]
    with pytest.raises(AttributeError, match="no attribute 'solve'"):
        hx.solve  # noqa: B018


def test_version_is_the_installed_package_version():
    assert hx.__version__ == importlib.metadata.version("hybridxfer")


def test_a_lazy_name_is_the_object_of_its_module():
    from hybridxfer._report import plot_transfer
    from hybridxfer._solve.rates import rates_along

    assert hx.plot_transfer is plot_transfer and hx.rates_along is rates_along


def test_from_import_of_a_lazy_name_in_a_fresh_process():
    code = "from hybridxfer import Solver, write_report; print(Solver.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Solver"
