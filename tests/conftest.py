import pyro
import pytest
import torch
from hypothesis import settings


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts with a clean param store, validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_num_threads(1)
    yield


# CPU timings on a shared 2-core machine are noisy: no per-example deadlines
settings.register_profile("lom", deadline=None, print_blob=True)
settings.load_profile("lom")
