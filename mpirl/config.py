"""Job files (TOML) parsed into documented dataclasses.

Every key is a dataclass field whose ``metadata["help"]`` documents it; the
same metadata carries the bounds that validation enforces, so
``docs/configuration.md`` is generated from here (``python -m mpirl.config``)
and cannot drift. Errors name the key and the file and suggest the closest
valid key.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from mpirl.errors import ConfigError
from mpirl.options import opt  # noqa: F401  (re-exported: mpirl.config.opt)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class AtariConfig:
    """`[env.atari]`: the preprocessing of `env.wrappers = "atari"` (DQN / IMPALA defaults)."""

    noop_max: int = opt(30, "Up to this many no-op actions after each reset (a random number).", min=0)
    frame_skip: int = opt(4, "Each action is repeated this many frames; the observation is the max of the last "
                             "two (flicker).", min=1)
    screen_size: int = opt(84, "Frames are resized to screen_size x screen_size grayscale.", min=8)
    frame_stack: int = opt(4, "Observations stack this many last frames on the last axis: (H, W, frame_stack) "
                              "uint8.", min=1)
    terminal_on_life_loss: bool = opt(False, "End training episodes at each lost life (evaluation plays whole "
                                             "games).")
    sticky_actions: float = opt(0.0, "Probability that the emulator repeats the previous action (Machado et al. "
                                     "2018 recommend 0.25; the v5 ids' own default).", min=0.0, max=1.0)
    fire_reset: bool = opt(True, "Press FIRE after each reset in games whose action 1 is FIRE (Breakout...).")
    full_action_space: bool = opt(False, "All 18 actions instead of the game's minimal set.")


@dataclass
class EnvConfig:
    """The environment every rank runs copies of."""

    id: str = opt("FrozenLake-v1", "Any registered gymnasium id, e.g. `CartPole-v1`, `Taxi-v4`.")
    kwargs: dict = opt({}, "Keyword arguments passed to `gymnasium.make` (a TOML table).")
    num_envs: int = opt(1, "Environment copies per rank.", min=1, max=4096)
    max_episode_steps: int = opt(
        0, "Episode step limit (truncation); 0 keeps the environment's own limit.", min=0)
    wrappers: str = opt("none", "Preprocessing wrappers of every copy (training, greedy checks, `mpirl eval`): "
                                "`none`, or `atari` for `ALE/<Game>-v5` ids (settings in `[env.atari]`).",
                        choices=["none", "atari"])
    reward_clip: float = opt(0.0, "Clip each reward to [-reward_clip, reward_clip] in what the learner sees "
                                  "(DQN and IMPALA on Atari: 1); episode returns, metrics and the stop test "
                                  "stay unclipped. 0: no clipping. Every algorithm but tabular_q.", min=0.0)
    atari: AtariConfig = field(default_factory=AtariConfig, metadata={"help": "Atari preprocessing."})


@dataclass
class StopConfig:
    """When to stop before `total_env_steps`."""

    episode_return_mean: Optional[float] = opt(
        None, "Stop once the training return mean over the last 100 episodes (all ranks) reaches this.")
    greedy_episodes: int = opt(
        0, "When > 0, a training return mean that reaches `episode_return_mean` stops the run only if "
           "the greedy policy reaches it too, over this many evaluation episodes on rank 0 (fresh seeds "
           "each time; after a failed check the next waits for 100 more training episodes). "
           "Every algorithm but tabular_q.", min=0)
    greedy_return_mean: Optional[float] = opt(
        None, "The return the greedy check must reach (default: `episode_return_mean`); higher than the "
              "training threshold when a few failed greedy episodes must not pass as a settled policy.")


@dataclass
class LogConfig:
    """Metrics, TensorBoard and the progress line (rank 0 only)."""

    interval_s: float = opt(2.0, "Seconds between rows of `metrics.csv` and TensorBoard points.", min=0.0)
    tensorboard: bool = opt(True, "Write TensorBoard event files under `tb/` in the run directory.")
    progress: bool = opt(True, "Progress on rank 0's stdout: a live one-line display when stdout is a terminal, "
                               "otherwise (`| tee`, SLURM logs) a plain line every `log.print_every_s`.")
    print_every_s: float = opt(30.0, "Seconds between plain progress lines when stdout is not a terminal "
                                     "(0: none).", min=0.0)


@dataclass
class CheckpointConfig:
    """HDF5 checkpoints under `checkpoints/` in the run directory."""

    interval_s: float = opt(60.0, "Seconds between checkpoints; 0 writes only the final one.", min=0.0)
    keep: int = opt(3, "How many `ckpt-<env_steps>.h5` files to keep (oldest deleted first).", min=1)
    replay: bool = opt(False, "Also save the replay memory (with priorities and insert position) "
                              "in algorithms that have one.")


@dataclass
class EvalConfig:
    """The greedy evaluation printed at the end of `mpirl train` (and the `mpirl eval` default)."""

    episodes: int = opt(100, "Episodes of the final greedy evaluation.", min=1)
    max_episode_steps: int = opt(
        1000, "Step cap for evaluation episodes of environments that have no limit of their own.", min=1)


@dataclass
class FaultConfig:
    """Fault detection: silent ranks and non-finite updates (see docs/cluster.md)."""

    actor_timeout_s: float = opt(
        60.0, "Abort the job (exit 4, naming the ranks) when rank 0 has waited this many seconds for a rank "
              "that sends nothing: an actor of `apex`/`impala`/`a3c` silent since its last message, or a rank "
              "that does not reach a Gather, Allreduce or pairwise exchange (`dqn`, `tabular_q`, `a2c`, "
              "`gossip_a2c`). A rank's first message may take max(this, 120 s) (start-up). 0 disables.", min=0.0)
    max_nonfinite: int = opt(
        10, "Updates with a non-finite loss or gradient are skipped and counted (`nonfinite_skipped`); after "
            "this many in a row the run stops with an error (exit 4). 0 never stops.", min=0)


@dataclass
class LearnerConfig:
    """`[learner]`: where the learners compute (every algorithm but tabular_q)."""

    device: str = opt("cpu", "Torch device of the learners' networks and optimizers: `cpu`, `cuda` (a GPU torch "
                             "sees; ranks on one node take the node's GPUs round-robin; an error when there is "
                             "none) or `auto` (a GPU where there is one, else the CPU; rank 0 says which). "
                             "Actors always act on CPU; batches go to the device in pinned, non-blocking "
                             "copies and the weights come back once per publication. `impala.learner.device` "
                             "is an alias.", choices=["cpu", "cuda", "auto"])
    #: The key the job named the device with (`learner.device` or an alias), for error messages; not a key.
    given_as = "learner.device"


@dataclass
class Config:
    """A whole job: common keys plus the algorithm's own section `[<algo>]`."""

    algo: str = opt("tabular_q", "Algorithm (required in every job file): one of the names `mpirl train --help` "
                                 "lists.")
    name: str = opt("", "Run name; defaults to the job file's name. Run directories are `runs/<name>-<timestamp>`.")
    seed: int = opt(0, "Base seed; each rank derives its own from it and its rank.", min=0)
    total_env_steps: int = opt(100_000, "Stop after this many environment steps, summed over all ranks.", min=1)
    env: EnvConfig = field(default_factory=EnvConfig, metadata={"help": "Environment."})
    stop: StopConfig = field(default_factory=StopConfig, metadata={"help": "Early stop."})
    log: LogConfig = field(default_factory=LogConfig, metadata={"help": "Logging."})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"help": "Checkpoints."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Final evaluation."})
    fault: FaultConfig = field(default_factory=FaultConfig, metadata={"help": "Fault detection."})
    learner: LearnerConfig = field(default_factory=LearnerConfig, metadata={"help": "Learner placement."})
    agent: Any = field(default=None, metadata={"help": "The algorithm's own section, `[<algo>]`."})


# ---------------------------------------------------------------- parsing

def read_toml(path: str) -> dict:
    """Read a TOML job file; a missing or malformed file is a ConfigError naming it."""
    if not os.path.exists(path):
        raise ConfigError(f"job file not found: {path}")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read job file {path}: {e.strerror}") from None


def parse_value(text: str):
    """Parse the value of a ``--set key=value`` as TOML, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict, overrides) -> dict:
    """Apply ``key.sub=value`` overrides to a raw config dict (before validation)."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a section")
        node[parts[-1]] = parse_value(text.strip())
    return data


class KeySource:
    """Where a config key came from, for error messages: ``--set KEY`` or the job file (or checkpoint).

    ``source(key)`` names the override when ``key``, a section above it or a key
    below it was given with ``--set``, and the file otherwise.
    """

    def __init__(self, path: str, overrides=()):
        self.path = path
        self.overridden = [item.split("=", 1)[0].strip() for item in overrides or [] if "=" in item]

    def __call__(self, key: str = "") -> str:
        for k in reversed(self.overridden):  # the last --set of a key is the one that counts
            if key and (key == k or key.startswith(k + ".") or k.startswith(key + ".")):
                return f"--set {k}"
        return self.path

    def __str__(self) -> str:
        return self.path


def parse_config(data: dict, source="<config>", name: str = "", overrides=()) -> Config:
    """Validate a raw dict (from TOML plus overrides) into a :class:`Config`.

    ``source`` names the file (or a :class:`KeySource`); ``overrides`` are the
    ``--set`` items applied to ``data``, so errors in them name ``--set KEY``.
    """
    from mpirl.algos import algo_names, get_algo

    if not isinstance(source, KeySource):
        source = KeySource(source, overrides)
    data = dict(data)
    if "algo" not in data:
        raise ConfigError(f"{source('algo')}: no 'algo' key: a job names its algorithm, e.g. algo = \"tabular_q\" "
                          f"(valid: {', '.join(algo_names())})")
    algo = data["algo"]
    if not isinstance(algo, str) or algo not in algo_names():
        raise ConfigError(f"{source('algo')}: unknown algo {algo!r} (key 'algo'; valid: {', '.join(algo_names())})"
                          f"{_suggest(algo, algo_names())}")
    agent_cls = get_algo(algo).Config
    agent_data = data.pop(algo, {})
    for other in algo_names():
        if other != algo and other in data:
            raise ConfigError(f"{source(other)}: section [{other}] given but algo = {algo!r}")
    if not isinstance(agent_data, dict):
        raise ConfigError(f"{source(algo)}: '{algo}' must be a section ([{algo}])")
    cfg = _build(Config, data, source, "", skip={"agent"})
    cfg.agent = _build(agent_cls, agent_data, source, algo + ".")
    _learner_alias(cfg, data, agent_data, source)
    if not cfg.name:
        cfg.name = name or cfg.algo
    return cfg


def _learner_alias(cfg: Config, data: dict, agent_data: dict, source) -> None:
    # `impala.learner.device` came first; it stays a name for `learner.device` (public job-file key).
    sub = getattr(cfg.agent, "learner", None)
    old = (agent_data.get("learner") or {}).get("device") if isinstance(agent_data.get("learner"), dict) else None
    new = (data.get("learner") or {}).get("device") if isinstance(data.get("learner"), dict) else None
    if sub is None or old is None:
        cfg.learner.given_as = "learner.device"
        if sub is not None:
            sub.device = cfg.learner.device
        return
    if new is not None and new != old:
        given = [str(source(k)).startswith("--set") for k in ("learner.device", f"{cfg.algo}.learner.device")]
        if given == [True, False]:  # an override beats the file (or a checkpoint's stored config)
            sub.device = cfg.learner.device
            cfg.learner.given_as = "learner.device"
            return
        if given == [False, True]:
            cfg.learner.device = sub.device
            cfg.learner.given_as = f"{cfg.algo}.learner.device"
            return
        raise ConfigError(f"{source(cfg.algo + '.learner.device')}: key '{cfg.algo}.learner.device' is {old!r} "
                          f"but 'learner.device' is {new!r}: they name the same setting; give one of them")
    cfg.learner.device = sub.device = old
    cfg.learner.given_as = f"{cfg.algo}.learner.device"


def load_job(path: str, overrides=()) -> Config:
    """Read a job file, apply ``--set`` overrides and validate."""
    data = apply_overrides(read_toml(path), overrides)
    stem = os.path.splitext(os.path.basename(path))[0]
    return parse_config(data, path, stem, overrides)


def _suggest(key, valid) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _build(cls, data: dict, source: str, prefix: str, skip=()):
    if not isinstance(data, dict):
        raise ConfigError(f"{source(prefix.rstrip('.'))}: '{prefix.rstrip('.')}' must be a section (a TOML table)")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    for key in data:
        if key not in fields:
            valid = [prefix + k for k in fields]
            raise ConfigError(f"{source(prefix + key)}: unknown key '{prefix}{key}'{_suggest(prefix + key, valid)}")
    values = {}
    for name, f in fields.items():
        if name not in data:
            continue
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            values[name] = _build(typ, data[name], source, f"{prefix}{name}.")
        else:
            values[name] = _check(data[name], typ, f.metadata, f"{prefix}{name}", source)
    return cls(**values)


def _check(value, typ, meta, key, source):
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union and type(None) in args:
        typ = next(a for a in args if a is not type(None))
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        dict: lambda v: isinstance(v, dict),
        list: lambda v: isinstance(v, list),
    }[typ](value)
    if not ok:
        raise ConfigError(f"{source(key)}: key '{key}' must be {typ.__name__}, got {type(value).__name__} {value!r}")
    if typ is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{source(key)}: key '{key}' must be finite, got {value}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{source(key)}: key '{key}' must be one of {meta['choices']}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{source(key)}: key '{key}' must be >= {meta['min']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{source(key)}: key '{key}' must be <= {meta['max']}, got {value}")
    return value


# ---------------------------------------------------------------- output

def to_dict(cfg: Config) -> dict:
    """The resolved config as a plain dict (TOML-able: None values are left out)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = cfg.algo if f.name == "agent" else f.name
        if dataclasses.is_dataclass(value):
            out[key] = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        elif value is not None:
            out[key] = value
    return out


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML text."""
    import tomli_w

    return tomli_w.dumps(to_dict(cfg))


def from_dict(data: dict, source: str = "<checkpoint config>") -> Config:
    """Rebuild a Config from :func:`to_dict` output (e.g. stored in a checkpoint)."""
    import copy

    return parse_config(copy.deepcopy(data), source)


def markdown_reference() -> str:
    """Markdown tables of every key, generated from the dataclasses (docs/configuration.md)."""
    from mpirl.algos import algo_names, get_algo

    lines = []

    def table(cls, prefix):
        import tomli_w

        rows = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            typ = hints[f.name]
            if f.name == "agent" or dataclasses.is_dataclass(typ):
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if default is None or default == {}:
                shown = "unset" if default is None else "{}"
            else:
                shown = tomli_w.dumps({"v": default})[4:].strip()
                # tomli_w writes arrays one item a line, which would break the table row.
                shown = " ".join(shown.split()).replace("[ ", "[").replace(", ]", "]")
            bounds = ", ".join(f"{k} {f.metadata[k]}" for k in ("min", "max", "choices") if k in f.metadata)
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            name = f"{args[0].__name__} (optional)" if args else typ.__name__
            rows.append(f"| `{prefix}{f.name}` | {name} | `{shown}` | {bounds} | {f.metadata.get('help', '')} |")
        return ["| key | type | default | bounds | meaning |", "| --- | --- | --- | --- | --- |"] + rows

    lines += ["## Common keys", ""] + table(Config, "") + [""]
    for name, cls in typing.get_type_hints(Config).items():
        if dataclasses.is_dataclass(cls):
            lines += [f"## `[{name}]`: {cls.__doc__.strip()}", ""] + table(cls, f"{name}.") + [""]
            for sub, sub_cls in typing.get_type_hints(cls).items():  # e.g. `[env.atari]`
                if dataclasses.is_dataclass(sub_cls):
                    lines += [f"## {sub_cls.__doc__.strip()}", ""] + table(sub_cls, f"{name}.{sub}.") + [""]
    for name in algo_names():
        cls = get_algo(name).Config
        lines += [f"## `[{name}]`: {cls.__doc__.strip()}", ""] + table(cls, f"{name}.") + [""]
        # An algorithm's sub-tables, e.g. `[impala.learner]`.
        for sub, sub_cls in typing.get_type_hints(cls).items():
            if dataclasses.is_dataclass(sub_cls):
                lines += [f"## `[{name}.{sub}]`: {sub_cls.__doc__.strip()}", ""] + table(sub_cls, f"{name}.{sub}.")
                lines += [""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_reference())
