"""World.sendrecv under MPI: pairwise exchanges along the gossip schedule, at any process count.

    mpirun -n 4 python -m pytest --with-mpi -q tests/mpi/test_sendrecv.py
"""
import numpy as np
import pytest

from mpirl.functional.gossip import gossip_peer, schedule_period


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_pairs_of_the_schedule_swap_buffers(world, dtype):
    for k in range(2 * schedule_period(world.size)):
        peer = gossip_peer(world.rank, world.size, k)
        if peer is None:
            continue
        send = np.arange(1000, dtype=dtype) + 10 * world.rank + k
        recv = np.full(1000, -1, dtype=dtype)
        out = world.sendrecv(send, recv, peer, tag=7)
        assert out is recv
        np.testing.assert_array_equal(recv, np.arange(1000, dtype=dtype) + 10 * peer + k)
        np.testing.assert_array_equal(send, np.arange(1000, dtype=dtype) + 10 * world.rank + k)  # untouched


@pytest.mark.mpi(min_size=1)
def test_pairwise_averaging_keeps_the_global_mean(world):
    x = np.full(64, float(world.rank) ** 2, np.float64)
    total = world.allreduce(x.copy())
    buf = np.empty_like(x)
    for k in range(3 * schedule_period(world.size)):
        peer = gossip_peer(world.rank, world.size, k)
        if peer is not None:
            world.sendrecv(x, buf, peer, tag=8)
            x = 0.5 * (x + buf)
    np.testing.assert_allclose(world.allreduce(x.copy()), total)


@pytest.mark.mpi(min_size=1)
def test_sendrecv_rejects_non_contiguous_buffers(world):
    with pytest.raises(TypeError):
        world.sendrecv(np.zeros((4, 4))[:, 0], np.zeros(4), 0)
