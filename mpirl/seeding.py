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
