"""Pure RL maths (no MPI, no state, no global RNG), each function tested against a plain loop reference."""
from mpirl.functional.dqn import DQNLoss, NStep, double_q_targets, dqn_loss, n_step_transitions
from mpirl.functional.vtrace import VTraceReturns, vtrace

__all__ = ["DQNLoss", "NStep", "VTraceReturns", "double_q_targets", "dqn_loss", "n_step_transitions", "vtrace"]
