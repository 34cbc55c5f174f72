"""`mpirl bench tabular` option handling (the benchmark itself runs by hand: docs/benchmarks.md)."""
import os

import pytest

from mpirl.bench import tabular as bt

CLIFF = os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "cliffwalking_q.toml")


def test_set_overrides_reach_the_problem_and_name_the_files():
    args = bt.parse_args(["--job", CLIFF, "--set", "tabular_q.sync_every=20", "--set", "tabular_q.combine=sum",
                          "--name", "cliff_sum20"])
    assert args.set == ["tabular_q.sync_every=20", "tabular_q.combine=sum"] and args.name == "cliff_sum20"
    problem = bt.Problem(args.job, args.set)
    assert problem.sync_every == 20 and problem.cfg.agent.combine == "sum"
    assert problem.optimum == pytest.approx(-13.0)
    assert bt.parse_args([]).name == "tabular_scaling" and bt.parse_args([]).set == []


def test_a_bad_override_is_a_clear_error_with_exit_2(capsys):
    assert bt.main(["--job", CLIFF, "--set", "tabular_q.combine=bogus"]) == 2
    err = capsys.readouterr().err
    assert "key 'tabular_q.combine' must be one of ['sum', 'mean', 'pooled'], got 'bogus'" in err


def test_budgets_are_growing_multiples_of_sync_every():
    grid = bt.budget_grid(2000, 20000, 2 ** 0.25, 100)
    assert grid[0] == 2000 and grid[-1] <= 20000 and grid == sorted(set(grid))
    assert all(b % 100 == 0 for b in grid)
