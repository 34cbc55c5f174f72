"""Pure RL maths (no MPI, no state, no global RNG), each function tested against a plain loop reference."""
from mpirl.functional.dqn import DQNLoss, NStep, double_q_targets, dqn_loss, n_step_transitions
from mpirl.functional.impala import ImpalaLoss, impala_loss, unroll_discounts, unroll_log_rhos
from mpirl.functional.vtrace import VTraceReturns, vtrace

__all__ = ["DQNLoss", "ImpalaLoss", "NStep", "VTraceReturns", "double_q_targets", "dqn_loss", "impala_loss",
           "n_step_transitions", "unroll_discounts", "unroll_log_rhos", "vtrace"]
