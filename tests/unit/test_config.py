"""Job files into dataclasses: defaults, overrides, errors that name the key."""
import glob
import os

import pytest

from mpirl.config import apply_overrides, from_dict, load_job, markdown_reference, parse_config, to_dict, to_toml
from mpirl.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def write(tmp_path, text, name="job.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_minimal_job_gets_defaults_and_name_from_file(tmp_path):
    cfg = load_job(write(tmp_path, 'algo = "tabular_q"\n', "my_job.toml"))
    assert cfg.name == "my_job"
    assert cfg.env.id == "FrozenLake-v1" and cfg.env.num_envs == 1
    assert cfg.stop.episode_return_mean is None
    assert cfg.agent.gamma == pytest.approx(0.99)


def test_overrides_parse_toml_values_and_plain_strings(tmp_path):
    cfg = load_job(write(tmp_path, 'algo = "tabular_q"\n'),
                   ["seed=7", "env.id=Taxi-v4", "tabular_q.gamma=0.5", "stop.episode_return_mean=0.7",
                    "env.kwargs={map_name = \"8x8\"}", "log.tensorboard=false"])
    assert cfg.seed == 7 and cfg.env.id == "Taxi-v4" and cfg.agent.gamma == 0.5
    assert cfg.stop.episode_return_mean == 0.7 and cfg.env.kwargs == {"map_name": "8x8"}
    assert cfg.log.tensorboard is False


def test_round_trip_through_toml_and_dict(tmp_path):
    cfg = load_job(write(tmp_path, 'algo = "tabular_q"\nseed = 3\n[env]\nkwargs = {is_slippery = false}\n'))
    again = load_job(write(tmp_path, to_toml(cfg), "again.toml"))
    assert to_dict(again) == to_dict(cfg)
    assert to_dict(from_dict(to_dict(cfg))) == to_dict(cfg)


@pytest.mark.parametrize("text, words", [
    ('algo = "tabular_q"\nsede = 1\n', ["unknown key 'sede'", "'seed'"]),
    ('algo = "tabular_q"\n[env]\nids = "x"\n', ["'env.ids'", "'env.id'"]),
    ('algo = "tabular_q"\n[tabular_q]\ngama = 0.9\n', ["'tabular_q.gama'", "'tabular_q.gamma'"]),
    ('algo = "tabular_q"\nseed = "abc"\n', ["'seed'", "must be int"]),
    ('algo = "tabular_q"\n[env]\nnum_envs = 1.5\n', ["'env.num_envs'", "must be int"]),
    ('algo = "tabular_q"\n[tabular_q]\ngamma = 1.5\n', ["'tabular_q.gamma'", "<= 1.0"]),
    ('algo = "tabular_q"\n[checkpoint]\nkeep = 0\n', ["'checkpoint.keep'", ">= 1"]),
    ('algo = "tabular_qq"\n', ["unknown algo 'tabular_qq'", "'tabular_q'"]),
    ('algo = "tabular_q"\n[tabular_q]\ncombine = "max"\n', ["'tabular_q.combine'", "one of"]),
    ('algo = "tabular_q"\nenv = 3\n', ["'env' must be a section"]),
    ('algo = "tabular_q"\n[log]\ninterval_s = nan\n', ["'log.interval_s'", "finite"]),
    ('algo = "tabular_q"\nseed = [\n', ["not valid TOML"]),
])
def test_bad_job_files_name_the_problem(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_job(path)
    for w in words:
        assert w in str(err.value)
    assert path in str(err.value)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="job file not found: .*nope.toml"):
        load_job(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["seed"])


def test_booleans_are_not_numbers():
    with pytest.raises(ConfigError, match="'seed' must be int"):
        parse_config({"algo": "tabular_q", "seed": True})


def test_every_shipped_job_file_is_valid():
    jobs = glob.glob(os.path.join(ROOT, "jobs", "*.toml"))
    assert jobs
    for path in jobs:
        load_job(path)


def test_configuration_doc_is_generated_from_the_dataclasses():
    # docs/configuration.md embeds the generated reference; regenerate with `python -m mpirl.config`.
    doc = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    assert markdown_reference() in doc


def test_describe_hosts_groups_ranks_by_host_in_rank_order():
    from mpirl.run import describe_hosts

    assert describe_hosts(["a"]) == "1 host: a (rank 0)"
    assert describe_hosts(["n1", "n1", "n2", "n2"]) == "2 hosts: n1 (ranks 0-1), n2 (ranks 2-3)"
    assert describe_hosts(["a", "b", "a", "a", "b"]) == "2 hosts: a (ranks 0,2-3), b (ranks 1,4)"
    many = describe_hosts([f"n{i // 4:03d}" for i in range(64)], most=2)
    assert many == "16 hosts: n000 (ranks 0-3), n001 (ranks 4-7), ... 14 more (timings.json lists every rank's host)"
