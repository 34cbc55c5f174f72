"""``opt``: a documented, bounded dataclass field; a leaf module, so algorithm configs import it without
importing :mod:`mpirl.config` (which imports the algorithm registry)."""
from __future__ import annotations

from dataclasses import field


def opt(default, help, **bounds):
    """A config field with its documentation and validation bounds."""
    meta = {"help": help, **bounds}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
