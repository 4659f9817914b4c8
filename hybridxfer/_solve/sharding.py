"""Many batches over many devices: a study's batch arrays split along the batch axis
over every local device, so that one jitted solve runs a share of the batches on
each (GSPMD partitions the vmapped solve; each batch's solve is independent of the
others', so the result is that of one device).

On a machine with one device nothing changes. On CPU, ``XLA_FLAGS=
--xla_force_host_platform_device_count=N`` (set before JAX starts) gives N host
devices, which is how the tests check it.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._data.batch_data import BatchData

__all__ = ["AXIS", "batch_sharding", "shard_batches"]

AXIS = "batch"  # the mesh axis the batches are split along


def batch_sharding(devices: Sequence[jax.Device] | None = None) -> NamedSharding:
    """A sharding of arrays whose leading axis is the batch axis over `devices`
    (default: every local device): a 1-D mesh named :data:`AXIS`, ``PartitionSpec(AXIS)``."""
    mesh = Mesh(np.asarray(list(devices or jax.local_devices())), (AXIS,))
    return NamedSharding(mesh, PartitionSpec(AXIS))


def shard_batches(data: BatchData, devices: Sequence[jax.Device] | None = None) -> BatchData:
    """`data` with each array split along its batch axis over `devices` (default:
    every local device).

    The batch count B is padded up to a multiple of the device count D with copies of
    the first batch, masked out (``mask`` False), as :func:`~hybridxfer._data.
    batch_data.batch_data` pads to its bucket: rows ``B..`` of a solve are padding
    (B is a power of two, so with D a power of two no padding is needed). With one
    device `data` is returned as is.

    Args:
        data: B batches' arrays (leading axis B).
        devices: the devices; each gets ``ceil(B / D)`` batches.

    Returns:
        BatchData with leading axis ``D * ceil(B / D)``, placed with
        :func:`batch_sharding`. A solve's ``y0`` or per-batch ``free`` values, if
        given, need the same leading axis.
    """
    devices = list(devices or jax.local_devices())
    if len(devices) == 1:
        return data
    pad = -data.times.shape[0] % len(devices)
    if pad:
        data = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[:1], pad, axis=0)]), data)
        data = eqx.tree_at(lambda d: d.mask, data, np.where(_padding(data, pad), False, data.mask))
    return jax.device_put(data, batch_sharding(devices))


def _padding(data: BatchData, pad: int) -> np.ndarray:
    """(B, 1): True on the last `pad` rows."""
    rows = np.arange(data.mask.shape[0])[:, None]
    return rows >= data.mask.shape[0] - pad
