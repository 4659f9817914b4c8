"""Members in groups: on a CPU one group per usable core, stepped at once in threads
(a step of vmapped members runs on about one core: two groups of 17 members took 21
ms at once, one of 34 took 36 ms); on an accelerator one group."""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

__all__ = ["groups", "join", "on_device", "take", "workers"]


def workers() -> int:
    """How many groups of members step at once: on the CPU backend the usable cores
    (the process's CPU affinity, and a container's CPU quota, cgroup v2 ``cpu.max``, if
    it sets one), else 1."""
    if jax.default_backend() != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:  # e.g. "200000 100000" for 2 cores; "max 100000" (no quota) fails int()
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        cores = min(cores or 1, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores or 1


def groups(n: int, workers: int) -> list[np.ndarray]:
    """Member indices of each group: interleaved, so that slow and fast plans spread,
    and of equal sizes (one compile); a short group repeats its first member."""
    k = min(workers, n)
    return [np.resize(np.arange(g, n, k), -(-n // k)) for g in range(k)]


def take(tree, index: np.ndarray | int):
    """The members `index` of a tree whose array leaves are stacked over members, or
    member `index` itself, as host arrays (no eager operation per leaf)."""
    return jax.tree.map(lambda x: np.asarray(x)[index] if eqx.is_array(x) else x, tree)


def join(trees, groups: list[np.ndarray]):
    """Inverse of :func:`take` over `groups`: the stacked tree of every member, in
    order (host arrays; a repeated member is taken from its first place)."""
    where = np.concatenate(groups)
    first = np.unique(where, return_index=True)[1]
    join = lambda *xs: np.concatenate([np.asarray(x) for x in xs])[first]  # noqa: E731
    arrays = [eqx.filter(t, eqx.is_array) for t in trees]
    return eqx.combine(
        jax.tree.map(join, *arrays), eqx.filter(trees[0], eqx.is_array, inverse=True)
    )


def on_device(tree):
    """`tree` with its host arrays as JAX arrays (transferred: jnp.asarray would compile
    a program per shape)."""
    return jax.tree.map(lambda x: jax.device_put(x) if isinstance(x, np.ndarray) else x, tree)
