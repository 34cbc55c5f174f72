"""mpirl.comm under MPI: collectives, JSON control messages, message buffers, flat torch vectors, p2p.

Passes at any process count:

    python -m pytest --with-mpi -q tests/mpi/test_comm.py
    mpirun -n 2 python -m pytest --with-mpi -q tests/mpi/test_comm.py
    mpirun -n 4 python -m pytest --with-mpi -q tests/mpi/test_comm.py

Every test runs on a private duplicate of COMM_WORLD (the ``world`` fixture);
results are checked on every rank, so a wrong value fails where it appears.
"""
import numpy as np
import pytest

from mpirl.comm import Message, MessageSpec
from mpirl.params import flat_gradients, flat_parameters

DTYPES = ["float64", "float32", "int64", "int32", "uint8", "complex128"]
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 0, 3), (4, 3, 2)]
REDUCIBLE = ["float64", "float32", "int64", "int32", "uint8"]  # MAX/MIN are not defined on complex


def _value(rank, shape, dtype, salt=0):
    """Deterministic per-rank contents, small enough for uint8 sums at any sane rank count."""
    n = int(np.prod(shape, dtype=np.int64))
    base = (np.arange(n) * 3 + rank * 7 + salt) % 11
    out = base.astype(dtype).reshape(shape)
    if np.dtype(dtype).kind == "c":
        out = out + 1j * (rank + 1)
    return np.array(out)  # an ndarray even for shape ()


# ---------------------------------------------------------------- collectives

@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("dtype", DTYPES + ["bool"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bcast(world, dtype, shape):
    for root in sorted({0, world.size - 1}):
        expected = _value(root, shape, dtype)
        buf = expected.copy() if world.rank == root else np.zeros(shape, dtype=dtype)
        out = world.bcast(buf, root=root)
        assert out is buf  # in place
        assert buf.dtype == np.dtype(dtype) and buf.shape == shape
        np.testing.assert_array_equal(buf, expected)


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gather(world, dtype, shape):
    for root in sorted({0, world.size - 1}):
        out = world.gather(_value(world.rank, shape, dtype), root=root)
        if world.rank == root:
            assert out.shape == (world.size,) + shape and out.dtype == np.dtype(dtype)
            for r in range(world.size):
                np.testing.assert_array_equal(out[r], _value(r, shape, dtype))
        else:
            assert out is None


@pytest.mark.mpi(min_size=1)
def test_gather_into_given_buffer(world):
    recv = np.full((world.size, 3), -1, dtype=np.int32) if world.is_learner else None
    out = world.gather(np.full(3, world.rank, dtype=np.int32), recvbuf=recv)
    if world.is_learner:
        assert out is recv
        np.testing.assert_array_equal(recv, np.repeat(np.arange(world.size), 3).reshape(world.size, 3))


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths", ["rank", "rank-plus-one", "all-empty", "one-big"])
def test_gatherv(world, dtype, lengths):
    def length(r):
        return {"rank": r, "rank-plus-one": r + 1, "all-empty": 0, "one-big": 1000 if r == 0 else 2}[lengths]

    for root in sorted({0, world.size - 1}):
        parts = world.gatherv(_value(world.rank, (length(world.rank),), dtype, salt=5), root=root)
        if world.rank == root:
            assert len(parts) == world.size
            for r, part in enumerate(parts):
                assert part.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(part, _value(r, (length(r),), dtype, salt=5))
        else:
            assert parts is None


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("dtype", REDUCIBLE + ["complex128"])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_allreduce(world, dtype, op, shape):
    if op != "sum" and np.dtype(dtype).kind == "c":
        pytest.skip("MPI_MAX/MPI_MIN are not defined on complex types")
    everyone = np.stack([_value(r, shape, dtype) for r in range(world.size)])
    expected = {"sum": everyone.sum(axis=0), "max": everyone.max(axis=0), "min": everyone.min(axis=0)}[op]
    buf = _value(world.rank, shape, dtype)
    out = world.allreduce(buf, op=op)
    assert out is buf and buf.dtype == np.dtype(dtype) and buf.shape == shape
    np.testing.assert_array_equal(buf, expected.astype(dtype))


@pytest.mark.mpi(min_size=1)
def test_allreduce_unknown_op(world):
    with pytest.raises(KeyError):
        world.allreduce(np.zeros(3), op="prod")


@pytest.mark.mpi(min_size=1)
def test_non_contiguous_buffers_are_rejected(world):
    strided = np.zeros((4, 4))[:, 1]
    for call in (lambda: world.bcast(strided), lambda: world.allreduce(strided),
                 lambda: world.gather(strided), lambda: world.gatherv(strided)):
        with pytest.raises(TypeError, match="C-contiguous"):
            call()
    with pytest.raises(TypeError):
        world.bcast([1, 2, 3])  # not a numpy array


@pytest.mark.mpi(min_size=1)
def test_barrier_and_roles(world):
    world.barrier()
    assert world.is_learner == (world.rank == 0)
    assert world.actor_ranks == list(range(1, world.size))
    assert world.num_actors == world.size - 1
    assert world.wait_all([world.comm.Ibarrier()], timeout_s=30)
    assert world.wait_all([], timeout_s=1)


# ---------------------------------------------------------------- JSON control messages

@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("obj", [
    None, 0, -3.5, "", "héllo ✓", [], {}, [1, [2, [3]], None],
    {"ok": True, "plan": {"config": {"seed": 1, "env": {"id": "FrozenLake-v1"}}, "run_dir": "runs/x"}},
    {"big": list(range(20000))},
], ids=lambda o: type(o).__name__ + str(len(str(o))))
def test_bcast_json(world, obj):
    for root in sorted({0, world.size - 1}):
        got = world.bcast_json(obj if world.rank == root else {"wrong": world.rank}, root=root)
        assert got == obj


@pytest.mark.mpi(min_size=1)
def test_gather_arrays_with_a_different_layout_on_every_rank(world):
    # Same names, rank-dependent lengths and dtypes (as a JSON blob holding a per-rank float would be).
    def mine(rank):
        return {"blob": np.arange(5 + 3 * rank, dtype=np.uint8), "w": _value(rank, (2, 3), "float32"),
                "step": np.array(rank + 0.5), f"only_{rank}": _value(rank, (rank + 1,), DTYPES[rank % 6])}

    for root in sorted({0, world.size - 1}):
        got = world.gather_arrays(mine(world.rank), root=root)
        if world.rank != root:
            assert got is None
            continue
        assert len(got) == world.size
        for r, arrays in enumerate(got):
            expected = mine(r)
            assert sorted(arrays) == sorted(expected)
            for k, v in expected.items():
                assert arrays[k].dtype == v.dtype and arrays[k].shape == v.shape
                np.testing.assert_array_equal(arrays[k], v)


@pytest.mark.mpi(min_size=1)
def test_gather_json(world):
    def doc(r):
        return {"rank": r, "name": "ä" * r, "items": list(range(r * 100)), "empty": {}} if r % 2 else []

    for root in sorted({0, world.size - 1}):
        got = world.gather_json(doc(world.rank), root=root)
        if world.rank == root:
            assert got == [doc(r) for r in range(world.size)]
        else:
            assert got is None


# ---------------------------------------------------------------- message buffers (no MPI)

def test_message_spec_layout():
    spec = MessageSpec({"a": ((3,), "u1"), "b": ((2, 2), "f8"), "c": ((), "i4"), "d": (5, "f4"),
                        "e": ((0,), "f8"), "f": ((1,), "i2")})
    assert spec.fields["c"] == ((), np.dtype("i4"))
    assert spec.fields["d"] == ((5,), np.dtype("f4"))  # an int shape means (n,)
    spans = []
    for name, (shape, dtype) in spec.fields.items():
        off = spec.offsets[name]
        assert off % 8 == 0, (name, off)
        spans.append((off, off + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize))
    spans.sort()
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert e0 <= s1  # fields never overlap
    assert spec.nbytes % 8 == 0 and spec.nbytes >= spans[-1][1]
    assert MessageSpec({"x": ((0,), "f8")}).nbytes == 8  # never a zero-size buffer
    with pytest.raises(ValueError):
        MessageSpec({})
    with pytest.raises(ValueError, match="negative"):
        MessageSpec({"x": ((-1,), "f8")})


def test_message_views():
    spec = MessageSpec({"obs": ((2, 3), "f4"), "act": ((2,), "i8"), "done": ((2,), "?"), "n": ((), "u2")})
    msg = spec.allocate()
    assert msg.buffer.dtype == np.uint8 and msg.buffer.shape == (spec.nbytes,) and not msg.buffer.any()
    for name, (shape, dtype) in spec.fields.items():
        view = msg[name]
        assert view.shape == shape and view.dtype == dtype
        assert np.shares_memory(view, msg.buffer)
    msg["obs"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    msg["act"] = [7, -1]
    msg["done"] = [True, False]
    msg["n"] = 513
    # The bytes land where the spec says, so a copy of the raw buffer carries every field.
    other = Message(spec)
    other.buffer[...] = msg.buffer
    np.testing.assert_array_equal(other["obs"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(other["act"], [7, -1])
    np.testing.assert_array_equal(other["done"], [True, False])
    assert int(other["n"]) == 513
    start = spec.offsets["act"]
    np.testing.assert_array_equal(msg.buffer[start:start + 16].view(np.int64), [7, -1])
    assert spec.allocate().buffer is not msg.buffer  # every allocation is fresh


@pytest.mark.mpi(min_size=1)
def test_bcast_message_buffer(world):
    spec = MessageSpec({"w": ((4, 4), "f4"), "step": ((), "i8"), "tag": ((3,), "u1")})
    msg = spec.allocate()
    if world.is_learner:
        msg["w"] = np.eye(4) * 2.5
        msg["step"] = 123456789012
        msg["tag"] = [1, 2, 3]
    world.bcast(msg.buffer)
    np.testing.assert_array_equal(msg["w"], np.eye(4, dtype=np.float32) * 2.5)
    assert int(msg["step"]) == 123456789012
    np.testing.assert_array_equal(msg["tag"], [1, 2, 3])


# ---------------------------------------------------------------- flat torch vectors

def _model(seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))


@pytest.mark.mpi(min_size=1)
def test_flat_parameters_bcast(world):
    import torch

    model = _model(seed=100 + world.rank)  # different weights on every rank
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()
    flat = flat_parameters(model)
    assert flat.dtype == np.float32 and flat.flags.c_contiguous
    assert flat.size == sum(p.numel() for p in model.parameters()) == 3 * 5 + 5 + 5 * 2 + 2
    np.testing.assert_array_equal(flat, before)  # values kept
    for p in model.parameters():
        assert np.shares_memory(p.detach().numpy(), flat)

    world.bcast(flat)  # in place: the module now holds rank 0's weights
    root_before = world.bcast(before.copy())
    np.testing.assert_array_equal(flat, root_before)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    np.testing.assert_array_equal(after, root_before)
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    with torch.no_grad():
        y = model(x).numpy().astype(np.float64).copy()
    ys = world.gather(y)
    if world.is_learner:
        for r in range(world.size):
            np.testing.assert_array_equal(ys[r], y)  # bit-identical outputs on every rank

    # An optimizer step writes through the same memory.
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(x).sum().backward()
    snapshot = flat.copy()
    opt.step()
    assert not np.array_equal(flat, snapshot)


@pytest.mark.mpi(min_size=1)
def test_flat_gradients_allreduce(world):
    import torch

    model = _model(seed=7)  # identical weights, different data per rank
    flat_parameters(model)
    grads = flat_gradients(model)
    assert grads.dtype == np.float32 and not grads.any()
    for p in model.parameters():
        assert np.shares_memory(p.grad.numpy(), grads)
    x = torch.full((2, 3), float(world.rank + 1))
    model(x).pow(2).sum().backward()  # accumulates into the flat vector
    mine = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy()
    np.testing.assert_array_equal(grads, mine)
    assert grads.any()

    everyone = world.gather(mine)
    world.allreduce(grads)
    total = world.bcast(everyone.sum(axis=0) if world.is_learner else np.empty_like(mine))
    np.testing.assert_allclose(grads, total, rtol=1e-6)
    for p, g in zip(model.parameters(), np.split(grads, np.cumsum([q.numel() for q in model.parameters()])[:-1])):
        np.testing.assert_array_equal(p.grad.reshape(-1).numpy(), g)  # the module sees the sum


# ---------------------------------------------------------------- point to point

@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("payload", [4, 200_000], ids=["eager", "rendezvous"])
def test_actors_send_to_learner(world, payload):
    """Every actor sends more messages than it has slots; rank 0 gets each one intact and in order."""
    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"src": ((), "i4"), "seq": ((), "i4"), "data": ((payload,), "f8")})
    count, tag = 7, 11
    if world.is_learner:
        rx = Receiver(world, spec, tag, world.actor_ranks)
        seen = {r: [] for r in world.actor_ranks}
        for _ in range(count * world.num_actors):
            got = rx.recv(timeout_s=30)
            assert got is not None, "timed out waiting for an actor"
            src, msg = got
            assert int(msg["src"]) == src
            seq = int(msg["seq"])
            np.testing.assert_array_equal(msg["data"], np.full(payload, src * 1000 + seq, dtype=np.float64))
            seen[src].append(seq)
        assert seen == {r: list(range(count)) for r in world.actor_ranks}
        assert rx.poll() is None  # nothing extra
        rx.close()
    else:
        tx = Sender(world, spec, tag, slots=2)
        for seq in range(count):
            slot = tx.acquire(timeout_s=30)
            assert slot is not None
            msg = tx.buffer(slot)
            msg["src"], msg["seq"], msg["data"] = world.rank, seq, world.rank * 1000 + seq
            tx.send(slot, 0)
        assert tx.flush(timeout_s=30)
        assert tx.requests == [None, None]
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_learner_sends_to_every_actor(world):
    """Rank 0 round-robins more messages than slots to every actor through one 2-slot Sender."""
    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"dest": ((), "i4"), "seq": ((), "i4"), "w": ((50_000,), "f4")})
    count, tag = 5, 12
    if world.is_learner:
        tx = Sender(world, spec, tag, slots=2)
        for seq in range(count):
            for dest in world.actor_ranks:
                slot = tx.acquire(timeout_s=30)
                assert slot is not None
                msg = tx.buffer(slot)
                msg["dest"], msg["seq"], msg["w"] = dest, seq, seq + dest / 10
                tx.send(slot, dest)
        assert tx.flush(timeout_s=30)
    else:
        rx = Receiver(world, spec, tag, [0])
        kept = []
        for seq in range(count):
            got = rx.recv(timeout_s=30)
            assert got is not None
            src, msg = got
            assert src == 0 and int(msg["dest"]) == world.rank and int(msg["seq"]) == seq
            # The buffer is recycled after the next message from this source: keep a copy.
            kept.append(msg["w"].copy())
        for seq, w in enumerate(kept):
            np.testing.assert_array_equal(w, np.full(50_000, seq + world.rank / 10, dtype=np.float32))
        rx.close()
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_sender_free_slot_never_blocks(world):
    """With large messages nobody receives yet, free_slot returns None instead of waiting."""
    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"x": ((500_000,), "f8")})  # 4 MB: beyond any eager limit
    tag = 13
    if world.rank == 1:
        tx = Sender(world, spec, tag, slots=2)
        for value in (1.0, 2.0):
            slot = tx.free_slot()
            assert slot is not None
            tx.buffer(slot)["x"] = value
            tx.send(slot, 0)
        assert tx.free_slot() is None  # both in flight
        assert tx.acquire(timeout_s=0.05) is None
        assert not tx.flush(timeout_s=0.05)
    world.barrier()  # only now does rank 0 post its receives
    if world.is_learner:
        rx = Receiver(world, spec, tag, [1])
        for value in (1.0, 2.0):
            src, msg = rx.recv(timeout_s=30)
            assert src == 1 and msg["x"][0] == value and msg["x"][-1] == value
        rx.close()
    if world.rank == 1:
        assert tx.flush(timeout_s=30)
        assert tx.free_slot() is not None


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("synchronous", [False, True])
def test_synchronous_sender_waits_for_the_receiver_even_under_the_eager_limit(world, synchronous):
    """A tiny Isend completes before any receive is posted; an Issend (synchronous=True) only after."""
    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"x": ((4,), "f8")})  # 32 bytes: eager in every MPI
    tag = 14
    if world.rank == 1:
        tx = Sender(world, spec, tag, slots=1, synchronous=synchronous)
        tx.buffer(0)["x"] = 7.0
        tx.send(0, 0)
        # Eager: buffered by MPI at once. Synchronous: still waiting, for as long as rank 0 does not receive.
        assert tx.flush(timeout_s=0.2) is (not synchronous)
    world.barrier()  # only now does rank 0 post its receive
    if world.is_learner:
        rx = Receiver(world, spec, tag, [1])
        src, msg = rx.recv(timeout_s=30)
        assert src == 1 and list(msg["x"]) == [7.0] * 4
        rx.close()
    if world.rank == 1:
        assert tx.flush(timeout_s=30)
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_receiver_serves_ready_sources_in_turn(world):
    """With every actor's messages waiting, no actor is served twice before each ready one was served once."""
    import time

    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"src": ((), "i4")})
    count, tag = 8, 15
    if not world.is_learner:
        tx = Sender(world, spec, tag, slots=count)
        for slot in range(count):
            tx.buffer(slot)["src"] = world.rank
            tx.send(slot, 0)
    world.barrier()
    if world.is_learner:
        time.sleep(0.3)  # let every actor's (eager) messages reach rank 0 before it posts receives
        rx = Receiver(world, spec, tag, world.actor_ranks)
        order = []
        for _ in range(count * world.num_actors):
            got = rx.recv(timeout_s=30)
            assert got is not None
            order.append(got[0])
        first_round = order[:world.num_actors]
        # Testany alone reports the lowest ready index: rank 1 would take its 8 messages first.
        assert sorted(first_round) == world.actor_ranks, order
        assert sorted(order) == sorted(world.actor_ranks * count)
        rx.close()
    else:
        assert tx.flush(timeout_s=30)
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_receiver_timeout_and_close(world):
    from mpirl.comm.p2p import Receiver

    spec = MessageSpec({"x": ((3,), "f8")})
    if world.is_learner:
        rx = Receiver(world, spec, 14, world.actor_ranks)
        assert rx.poll() is None
        assert rx.recv(timeout_s=0.05) is None
        rx.close()  # cancels the posted receives
        assert rx.requests == []
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_shutdown(world):
    from mpirl.comm.p2p import send_shutdown, shutdown_requested
    from mpirl.comm.wait import poll_until

    assert not shutdown_requested(world)
    assert not shutdown_requested(world, source=0)
    world.barrier()  # nobody has sent anything yet
    if world.is_learner:
        for dest in world.actor_ranks:
            send_shutdown(world, dest)
    else:
        assert poll_until(lambda: shutdown_requested(world, source=0), timeout_s=30)
        assert not shutdown_requested(world)  # consumed
    world.barrier()
    # The other way round: every actor tells rank 0, which counts them from any source.
    if world.is_learner:
        got = 0
        while got < world.num_actors:
            assert poll_until(lambda: shutdown_requested(world), timeout_s=30)
            got += 1
        assert not shutdown_requested(world)
    else:
        send_shutdown(world, 0)
    world.barrier()


@pytest.mark.mpi
def test_split_gives_a_sub_world_with_nonblocking_collectives(world):
    color = world.rank % 2
    sub = world.split(color)
    same = [r for r in range(world.size) if r % 2 == color]
    assert sub.size == len(same) and sub.rank == same.index(world.rank)
    buf = np.ones(3, np.float32) * (world.rank + 1)
    sub.allreduce(buf)
    np.testing.assert_array_equal(buf, np.full(3, sum(r + 1 for r in same), np.float32))
    assert sub.is_learner == (sub.rank == 0) and sub.actor_ranks == list(range(1, sub.size))
    sub.comm.Free()
