"""Every point-to-point message tag of mpirl, in one table (a tag is unique per message kind).

Algorithms take their tags from :data:`TAGS` (``TAGS["impala.unroll"]``);
the infrastructure's own tags (shutdown, roll call) sit in the 32000 range.
"""
from __future__ import annotations

TAGS = {
    # Ape-X: actors' transition batches, rank 0's weights, goodbyes/reports and control requests.
    "apex.data": 11, "apex.weights": 12, "apex.bye": 13, "apex.ctrl": 14,
    # IMPALA: unrolls, weights, goodbyes/reports, control requests.
    "impala.unroll": 21, "impala.weights": 22, "impala.bye": 23, "impala.ctrl": 24,
    # A3C: workers' gradients, the server's replies, the workers' RNG reports and goodbyes.
    "a3c.grad": 31, "a3c.params": 32, "a3c.report": 33,
    # Gossip A2C: the pairwise parameter swap.
    "gossip.params": 41,
    # Infrastructure (mpirl.comm): shutdown message, silent-rank roll call and its answers.
    "shutdown": 32000, "roll_call": 32001, "roll_answer": 32002,
}

if len(set(TAGS.values())) != len(TAGS):  # a clash would cross two message kinds
    raise RuntimeError("mpirl.comm.tags: two message kinds share a tag")
