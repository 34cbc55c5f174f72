"""Pure RL maths (no MPI, no state, no global RNG), each function tested against a plain loop reference."""
from mpirl.functional.a2c import A2CLoss, a2c_loss, n_step_returns
from mpirl.functional.dqn import DQNLoss, NStep, double_q_targets, dqn_loss, n_step_transitions
from mpirl.functional.impala import ImpalaLoss, impala_loss, unroll_discounts, unroll_log_rhos
from mpirl.functional.gossip import gossip_peer
from mpirl.functional.ppo import Advantages, PPOLoss, gae, ppo_loss
from mpirl.functional.vtrace import VTraceReturns, vtrace

__all__ = ["A2CLoss", "Advantages", "DQNLoss", "ImpalaLoss", "NStep", "PPOLoss", "VTraceReturns", "a2c_loss",
           "double_q_targets", "dqn_loss", "gae", "gossip_peer", "impala_loss", "n_step_returns",
           "n_step_transitions", "ppo_loss", "unroll_discounts", "unroll_log_rhos", "vtrace"]
