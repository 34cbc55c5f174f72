"""The only package of mpirl that imports mpi4py (lazily, so eval needs no MPI)."""
from mpirl.comm.buffers import Message, MessageSpec  # noqa: F401


def get_world():
    """The job's :class:`~mpirl.comm.world.World` (initialises MPI on first use)."""
    from mpirl.comm.world import World

    global _WORLD
    try:
        return _WORLD
    except NameError:
        _WORLD = World()
        return _WORLD
