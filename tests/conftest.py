"""Test-suite settings.

Property tests (hypothesis) draw the same examples on every run by default, so a
run's outcome (in CI too) depends only on the code, not on a new random draw.
``python -m pytest --hypothesis-profile=explore`` draws new examples to look for
corner cases; a failure found so becomes a fixed test.

Compiled programs are kept (JAX's persistent compilation cache, as the command line
keeps them) in a folder of this run only, shared with the notebooks' kernels.
"""

import os

import jax
import pytest
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")


@pytest.fixture(autouse=True, scope="session")
def compilation_cache(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("jax-cache"))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    jax.config.update("jax_compilation_cache_dir", folder)


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Drop each test module's compiled programs after it (later modules load theirs
    from the persistent cache): one process holding every program of the whole suite
    crashed in its last tests (segfault / abort in the C++ unwinder, 2026-12-07)."""
    yield
    jax.clear_caches()
