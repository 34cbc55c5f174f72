"""Torch modules and optimizers as plain named numpy arrays, for pickle-free HDF5 checkpoints."""
from __future__ import annotations

import json

import numpy as np
import torch


def module_arrays(prefix: str, module: torch.nn.Module) -> dict:
    """``{prefix/name: array}`` for every tensor of ``module.state_dict()``."""
    return {f"{prefix}/{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module_arrays(prefix: str, module: torch.nn.Module, arrays: dict) -> None:
    """Copy ``{prefix/name: array}`` into ``module`` in place (keeps flat-parameter views intact)."""
    with torch.no_grad():
        for k, v in module.state_dict().items():
            v.copy_(torch.from_numpy(np.asarray(arrays[f"{prefix}/{k}"])))


def optimizer_arrays(prefix: str, opt: torch.optim.Optimizer) -> dict:
    """The optimizer's per-parameter tensors as arrays, its param groups as JSON bytes."""
    sd = opt.state_dict()
    out = {f"{prefix}/param_groups_json": np.frombuffer(json.dumps(sd["param_groups"]).encode(), np.uint8).copy()}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            out[f"{prefix}/state/{idx}/{k}"] = (v.detach().cpu().numpy().copy() if torch.is_tensor(v)
                                                else np.asarray(v))
    return out


def load_optimizer_arrays(prefix: str, opt: torch.optim.Optimizer, arrays: dict) -> None:
    """Restore what :func:`optimizer_arrays` saved."""
    groups = json.loads(np.asarray(arrays[f"{prefix}/param_groups_json"]).tobytes().decode())
    state: dict = {}
    head = f"{prefix}/state/"
    for key, value in arrays.items():
        if key.startswith(head):
            idx, name = key[len(head):].split("/", 1)
            state.setdefault(int(idx), {})[name] = torch.from_numpy(np.array(value))
    opt.load_state_dict({"state": state, "param_groups": groups})
