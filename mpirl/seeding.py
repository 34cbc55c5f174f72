"""Seeds: every rank derives its own streams from the base seed and its rank, here only."""
from __future__ import annotations

import random

import numpy as np


def rank_seed_sequence(base_seed: int, rank: int, stream: int = 0) -> np.random.SeedSequence:
    """The SeedSequence of ``rank``'s stream ``stream`` (0: the agent, 1: environments)."""
    return np.random.SeedSequence([int(base_seed), int(rank), int(stream)])


def rank_rng(base_seed: int, rank: int) -> np.random.Generator:
    """The rank's numpy Generator for agent randomness (exploration, tie-breaks)."""
    return np.random.default_rng(rank_seed_sequence(base_seed, rank, 0))


def env_seeds(base_seed: int, rank: int, n: int) -> list:
    """Distinct integer seeds for the ``n`` environment copies of ``rank``."""
    return [int(s) for s in rank_seed_sequence(base_seed, rank, 1).generate_state(n, dtype=np.uint32)]


def seed_globals(base_seed: int, rank: int) -> None:
    """Seed python's ``random`` and numpy's legacy global state (and torch's if it is loaded)."""
    import sys

    s = int(rank_seed_sequence(base_seed, rank, 2).generate_state(1, dtype=np.uint32)[0])
    random.seed(s)
    np.random.seed(s)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(s)


def capture_rng_state(generator: np.random.Generator | None = None) -> dict:
    """This process's RNG states (python, numpy global, the agent Generator, torch) as JSON-able data."""
    import sys

    version, internal, gauss = random.getstate()
    key_name, keys, pos, has_gauss, cached = np.random.get_state()
    doc = {
        "python": [version, list(internal), gauss],
        "numpy_global": [key_name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    if generator is not None:
        doc["generator"] = generator.bit_generator.state
    if "torch" in sys.modules:
        doc["torch"] = sys.modules["torch"].get_rng_state().tolist()
    return doc


def restore_rng_state(doc: dict, generator: np.random.Generator | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (in place for ``generator``)."""
    import sys

    version, internal, gauss = doc["python"]
    random.setstate((version, tuple(internal), gauss))
    key_name, keys, pos, has_gauss, cached = doc["numpy_global"]
    np.random.set_state((key_name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if generator is not None and "generator" in doc:
        generator.bit_generator.state = doc["generator"]
    if "torch" in doc and "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_rng_state(torch.tensor(doc["torch"], dtype=torch.uint8))


def rank_rng_doc(generator: np.random.Generator | None = None, extra: dict | None = None) -> dict:
    """One rank's RNG document as a checkpoint stores it: :func:`capture_rng_state` plus ``extra``.

    ``extra`` is JSON-able per-rank state (an algorithm's own generators,
    environment RNGs, schedule positions) that comes back to the same rank as
    ``ctx.restored_extra`` on resume.
    """
    doc = capture_rng_state(generator)
    doc["extra"] = extra or {}
    return doc


def env_generators(envs) -> list:
    """The numpy Generators behind a gymnasium (vector) env's randomness, in a fixed order.

    A ``SyncVectorEnv`` has one per copy; a native vector env (CartPole's) one
    for all copies; a plain env one. An ``AsyncVectorEnv`` keeps them in other
    processes: none (its environments are reseeded on resume).
    """
    if hasattr(envs, "envs"):  # SyncVectorEnv
        return [e.unwrapped.np_random for e in envs.envs]
    if hasattr(envs, "env_fns") or hasattr(envs, "processes"):  # AsyncVectorEnv
        return []
    gen = getattr(getattr(envs, "unwrapped", envs), "np_random", None)
    return [gen] if isinstance(gen, np.random.Generator) else []


def capture_env_rng(envs) -> list:
    """The bit-generator states of :func:`env_generators` (JSON-able)."""
    return [g.bit_generator.state for g in env_generators(envs)]


def restore_env_rng(envs, states) -> bool:
    """Put :func:`capture_env_rng`'s states back (in place); False if there are none or they do not fit.

    Call it before the environments' next ``reset()``: the episodes that were in
    flight start over, drawing from the restored streams.
    """
    gens = env_generators(envs)
    if not states or len(states) != len(gens):
        return False
    for g, s in zip(gens, states):
        g.bit_generator.state = s
    return True
