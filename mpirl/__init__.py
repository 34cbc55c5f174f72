"""mpirl: MPI-native distributed reinforcement learning."""
__version__ = "0.1.0"

__all__ = ["VTraceReturns", "gae", "ppo_loss", "vtrace"]

# Torch-backed names, imported on first access (PEP 562) so that `import mpirl`
# stays cheap: tabular runs and the CLI's start-up never pay for importing torch.
_LAZY = {"vtrace": "mpirl.functional.vtrace", "VTraceReturns": "mpirl.functional.vtrace",
         "gae": "mpirl.functional.ppo", "ppo_loss": "mpirl.functional.ppo"}


def __getattr__(name):
    """Resolve the lazily exported names of ``__all__`` on first access."""
    if name in _LAZY:
        import importlib

        # import_module reads sys.modules, so it returns the module even though
        # mpirl.functional rebinds its `vtrace` attribute to the function.
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """Module attributes plus the lazily exported names."""
    return sorted(set(globals()) | set(_LAZY))
