"""What every ``mpirl bench`` shares: option syntax, help, default output folder, column order, no-matplotlib path.

No benchmark runs here (they launch mpirun and take minutes: docs/benchmarks.md).
"""
import argparse
import csv
import importlib
import json
import os
import sys

import pytest

from mpirl.bench import output

BENCHES = ("comm", "tabular", "startup", "apex", "impala", "actor_critic", "frames", "peers", "ppo")
REPO = os.path.join(os.path.dirname(__file__), "..", "..")


def _module(what):
    return importlib.import_module(f"mpirl.bench.{what}")


@pytest.mark.parametrize("text, want", [
    ("4", [4]), ("2,3,5", [2, 3, 5]), ("0-9", list(range(10))), ("1,4-6", [1, 4, 5, 6]),
    (" 2 , 3 ", [2, 3]), ("3-3", [3]), ("10,2", [10, 2]),
])
def test_int_list_accepts_numbers_lists_and_ranges(text, want):
    assert output.int_list(text) == want


@pytest.mark.parametrize("text", ["", "a", "2,,3", "5-2", "-1", "1.5", "2-", "1;2", "2 3"])
def test_int_list_rejects_anything_else(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a list of integers"):
        output.int_list(text)


def test_flat_ints_and_format_ints():
    assert output.flat_ints([[2, 3], [5]]) == [2, 3, 5]
    assert output.flat_ints([1, 2, 4]) == [1, 2, 4]  # a plain default list passes through
    assert output.format_ints([0, 1, 2, 3, 5]) == "0-3,5"
    assert output.format_ints([2, 3, 5]) == "2,3,5" and output.format_ints([3]) == "3"


@pytest.mark.parametrize("what", BENCHES)
def test_default_out_dir_is_a_run_folder_not_docs(what):
    out = _module(what).parser().parse_args([]).out_dir
    parts = os.path.normpath(out).split(os.sep)
    assert parts[0] == "runs" and parts[1].startswith(f"bench-{what}-") and "docs" not in parts
    assert _module(what).parser().parse_args(["--out-dir", "docs/benchmarks"]).out_dir == "docs/benchmarks"


@pytest.mark.parametrize("what", BENCHES)
def test_help_renders_with_a_description_and_every_default(what, capsys):
    with pytest.raises(SystemExit) as e:
        _module(what).main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: mpirl bench {what}")
    assert f"mpirl bench {what}:" in text and "``" not in text  # the docstring's first paragraph
    for action in _module(what).parser()._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help and "default" in action.help, (what, action.option_strings)


def test_help_reaches_the_bench_through_the_mpirl_command(capsys):
    from mpirl import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "impala", "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: mpirl bench impala")


@pytest.mark.parametrize("what, argv, want", [
    ("tabular", ["--ranks", "1,2,4"], [1, 2, 4]),  # the old string spelling
    ("tabular", ["--ranks", "4", "2", "1"], [1, 2, 4]),
    ("tabular", ["--ranks", "1-4"], [1, 2, 3, 4]),
    ("apex", ["--ranks", "3"], [3]),  # the old single int
    ("apex", ["--ranks", "3,5"], [3, 5]),
    ("impala", ["--ranks", "2", "3", "5"], [2, 3, 5]),
    ("impala", ["--ranks", "2-3", "5"], [2, 3, 5]),
    ("startup", ["--ranks", "1,2", "4"], [1, 2, 4]),
    ("actor_critic", ["--ranks", "4", "2"], [4, 2]),
    ("ppo", ["--ranks", "1-2", "4"], [1, 2, 4]),
])
def test_one_ranks_syntax_for_every_bench(what, argv, want):
    mod = _module(what)
    if what == "tabular":
        got = mod.parse_args(argv + ["--job", os.path.join(REPO, "jobs", "frozenlake_q.toml")]).ranks
    else:
        got = output.flat_ints(mod.parser().parse_args(argv).ranks)
    assert got == want


def test_seeds_lists_and_counts():
    from mpirl.bench import actor_critic, tabular

    for argv in (["--seeds", "0", "1", "2"], ["--seeds", "0-2"], ["--seeds", "0,1", "2"]):
        assert output.flat_ints(actor_critic.parser().parse_args(argv).seeds) == [0, 1, 2]
    assert output.flat_ints(actor_critic.parser().parse_args([]).seeds) == [0]
    assert tabular.parser().parse_args(["--seeds", "5"]).seeds == 5  # a count: seeds 0..4


@pytest.mark.parametrize("what, argv", [
    ("apex", ["--ranks", "1"]), ("impala", ["--ranks", "2,1"]), ("actor_critic", ["--ranks", "1"]),
    ("startup", ["--ranks", "0"]), ("startup", ["--ranks", "x"]), ("impala", ["--ranks", "5-2"]),
    ("tabular", ["--ranks", "0,1"]),
])
def test_bad_ranks_exit_2_before_anything_runs(what, argv, capsys):
    with pytest.raises(SystemExit) as e:
        _module(what).main(argv)
    assert e.value.code == 2
    assert "--ranks" in capsys.readouterr().err


def test_columns_order_numbers_by_value():
    names = ["env_steps_actor10", "env_steps_actor2", "env_steps_actor1", "env_steps_actor11", "env_steps"]
    assert sorted(names, key=output.natural_key) == [
        "env_steps", "env_steps_actor1", "env_steps_actor2", "env_steps_actor10", "env_steps_actor11"]
    rows = [{"ranks": 12, "b_actor10": 1, "b_actor2": 1}, {"ranks": 3, "b_actor1": 1, "a": 0}]
    assert output.ordered_columns(rows, ["ranks"]) == ["ranks", "a", "b_actor1", "b_actor2", "b_actor10"]
    # mixed shapes of names still compare
    assert sorted(["1a", "a1", "a", "10"], key=output.natural_key) == ["1a", "10", "a", "a1"]


def test_apex_csv_has_per_actor_columns_in_numeric_order(tmp_path):
    from mpirl.bench import apex

    n = 12
    last = {"wall_time_s": 10.0, "env_steps": 1100.0, "updates": 50.0, "episode_return_mean": 500.0,
            **{f"env_steps_actor{r}": 100.0 * (1 + (r == 2)) for r in range(1, n)}}
    run = {"rows": [last], "offset_s": 1.0, "eval": {"episode_return_mean": 500.0}, "total_s": 12.0}
    row = apex.run_row(run, n, 0, 450.0)
    assert row["actor_env_steps_per_s_max"] == 20.0 and row["env_steps_per_s_actor2"] == 20.0
    cols = output.ordered_columns([row], ["ranks", "seed"])
    actor_cols = [c for c in cols if c.startswith("env_steps_per_s_actor")]
    assert actor_cols == [f"env_steps_per_s_actor{r}" for r in range(1, n)]
    output.write_csv_json(str(tmp_path), "apex", [row], cols, {})
    with open(tmp_path / "apex.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header.index("env_steps_per_s_actor2") < header.index("env_steps_per_s_actor10")


def test_plural():
    assert output.plural(1, "rank") == "1 rank" and output.plural(2, "rank") == "2 ranks"
    assert output.plural(0, "seed") == "0 seeds"


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError


def test_without_matplotlib_comm_writes_csv_json_and_says_how_to_get_the_png(tmp_path, no_matplotlib, capsys):
    from mpirl.bench import comm

    rows = [{"op": "bcast", "impl": i, "bytes": 8, "latency_us": 1.0, "bandwidth_MBps": 8.0, "ranks": 2,
             "repeats": 1} for i in comm.IMPLS]
    paths = comm.write_outputs(rows, str(tmp_path), {"ranks": 2, "repeats": 1})
    assert [os.path.basename(p) for p in paths] == ["comm.csv", "comm.json"]
    assert not (tmp_path / "comm.png").exists()
    assert json.loads((tmp_path / "comm.json").read_text())["rows"] == rows
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "skipped" in out[0] and 'pip install "mpirl[bench]"' in out[0]
    output.warn_if_no_matplotlib("comm", "x/comm.png")
    assert 'pip install "mpirl[bench]"' in capsys.readouterr().out


def test_without_matplotlib_tabular_writes_csv_json(tmp_path, no_matplotlib, capsys):
    from mpirl.bench import tabular

    rows = [{"ranks": 1, "seed": 0, "steps_per_rank": 100, "reached": True, "wall_s": 1.0, "train_s": 0.5}]
    summary = tabular.summarise(rows, [1])
    paths = tabular.write_outputs(rows, summary, str(tmp_path), {"job": "j", "cpus": 2}, "t")
    assert [os.path.basename(p) for p in paths] == ["t.csv", "t.json"]
    assert 'pip install "mpirl[bench]"' in capsys.readouterr().out


def test_with_matplotlib_tabular_writes_the_png(tmp_path):
    pytest.importorskip("matplotlib")
    from mpirl.bench import tabular

    rows = [{"ranks": r, "seed": 0, "steps_per_rank": 100 // r, "reached": True, "wall_s": 1.0, "train_s": 0.5}
            for r in (1, 2)]
    paths = tabular.write_outputs(rows, tabular.summarise(rows, [1, 2]), str(tmp_path), {"job": "j", "cpus": 2}, "t")
    assert [os.path.basename(p) for p in paths] == ["t.csv", "t.json", "t.png"]
    assert os.path.getsize(paths[2]) > 0
