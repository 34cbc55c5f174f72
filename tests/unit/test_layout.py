"""The rank layout: learner ranks first, actors served round-robin; what the algorithms ask instead of rank 0."""
import pytest

from mpirl.comm.layout import Layout


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_one_learner_serves_every_actor(size):
    lay = Layout(size)
    assert lay.learner_ranks == [0] and lay.actor_ranks == list(range(1, size))
    assert [lay.actor_index(r) for r in lay.actor_ranks] == list(range(size - 1))
    assert all(lay.learner_of(r) == 0 for r in lay.actor_ranks) and lay.actors_of(0) == lay.actor_ranks


def test_several_learners_share_the_actors_round_robin():
    lay = Layout(8, num_learners=3)
    assert lay.learner_ranks == [0, 1, 2] and lay.actor_ranks == [3, 4, 5, 6, 7]
    assert [lay.learner_of(r) for r in lay.actor_ranks] == [0, 1, 2, 0, 1]
    assert sorted(sum((lay.actors_of(k) for k in lay.learner_ranks), [])) == lay.actor_ranks
    with pytest.raises(ValueError, match="learner"):
        lay.actor_index(1)
    with pytest.raises(ValueError):
        Layout(2, num_learners=3)
