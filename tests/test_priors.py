"""Scene priors: the ScenePrior protocol is what as_scene_prior accepts, and each shipped
prior is a distribution over R^Ds whose scale follows the temperature."""

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from lom_pyro.priors import FixedScenePrior, MixtureScenePrior, ScenePrior, StandardNormalPrior, as_scene_prior


class Custom(nn.Module):
    dim = 3

    def forward(self, temperature: float = 1.0):
        return dist.Laplace(torch.zeros(3), torch.full((3,), temperature)).to_event(1)


@pytest.mark.parametrize("prior", [StandardNormalPrior(3), MixtureScenePrior(3, components=2), Custom(),
                                   FixedScenePrior(dist.Normal(torch.ones(3), 2.0).to_event(1))])
def test_shipped_and_custom_priors_satisfy_the_protocol(prior):
    assert isinstance(prior, ScenePrior)
    assert as_scene_prior(prior, 3) is prior
    d = prior(0.5)
    assert d.event_shape == (3,) and d.batch_shape == ()
    assert d.sample((4,)).shape == (4, 3)


def test_as_scene_prior_wraps_a_distribution_and_refuses_what_is_not_a_prior():
    wrapped = as_scene_prior(dist.Normal(torch.zeros(2), 3.0).to_event(1), 2)
    assert isinstance(wrapped, FixedScenePrior)
    assert torch.equal(wrapped(0.5).base_dist.scale, torch.full((2,), 1.5))   # τ multiplies the scale
    assert isinstance(as_scene_prior(None, 4), StandardNormalPrior)
    with pytest.raises(ValueError, match="ScenePrior"):
        as_scene_prior(lambda temperature=1.0: dist.Normal(0.0, 1.0), 1)   # callable, but no dim
    with pytest.raises(ValueError, match="scene_dim=5"):
        as_scene_prior(StandardNormalPrior(4), 5)
