"""What a fit compiles before its first step: the step once, and few small programs
before it (the t=0 check of rates and balances is one program for the member's start
and one for the equations, not one per eager operation).

Counted from JAX's own log of every XLA compilation (``jax_log_compiles``), in a
process whose caches are cleared first, so that nothing compiled by another test
hides a compile here."""

import logging
import re

import jax
import pytest

import hybridxfer as hx
from hybridxfer.demo import demo_model_path, demo_study

COMPILED = re.compile(r"Finished XLA compilation of jit\((\w+)\)")


@pytest.fixture
def compiled(caplog):
    """The names of the programs XLA compiles inside the block, in order."""
    names: list[str] = []

    class Log(logging.Handler):
        def emit(self, record):
            m = COMPILED.match(record.getMessage())
            if m:
                names.append(m.group(1))

    handler = Log(level=logging.WARNING)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        yield names
    finally:
        logger.removeHandler(handler)


def test_fit_compiles_the_step_once_after_few_programs(compiled):
    model = hx.load_model(demo_model_path())
    study = demo_study().select(batches=["A01", "A02", "A09"])  # 2 train, 1 valid
    jax.clear_caches()
    with jax.log_compiles(True):
        result = hx.fit(model, study, config=hx.FitConfig(steps=2, members=1), progress=False)
    assert len(result.history) == 2
    assert compiled.count("step") == 1, compiled
    before = compiled[: compiled.index("step")]
    # the member's keys, start and optimiser state, and the t=0 check: 13 programs here
    # (38 when the check ran its ~25 operations eagerly, each compiled on first use)
    assert len(before) <= 16, before
    assert {"_start", "_derivatives"} <= set(before), before
