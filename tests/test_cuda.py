"""The library on a CUDA device: same numbers as on the CPU, gradients on the device,
training, sampling and checkpoints. Skipped where no GPU is present (CI); run by
``benchmarks/gpu.sh`` on a lent GPU machine."""

import json
import os
import zlib

import pytest
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger

from lom_pyro import LOM
from lom_pyro.infer import GECO, LOMELBO, GECOConfig
from lom_pyro.metrics.ari import ari_fg
from lom_pyro.orderless.base import standalone
from lom_pyro.plates import make_plates
from lom_pyro.orderless.emorl import EMORL
from lom_pyro.sites import OBS, ORDERLESS_OBS
from lom_pyro.training import config_from_preset, load_trained, train

# LOM_TEST_DEVICE=cpu runs the same code CPU against CPU (a check of the tests themselves)
DEVICE = os.environ.get("LOM_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")

B, K, D, S = 4, 4, 8, 16


class CPUNoise(Messenger):
    """Reparameterised draws whose standard-normal noise comes from the CPU generator,
    seeded per site name: the same draws on every device."""

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"]:
            return
        base = msg["fn"]
        while hasattr(base, "base_dist"):
            base = base.base_dist
        if not isinstance(base, torch.distributions.Normal):  # plates' subsample sites
            return
        g = torch.Generator().manual_seed(zlib.crc32(msg["name"].encode()))
        noise = torch.randn(tuple(msg["fn"].shape()), generator=g, dtype=torch.float64)
        msg["value"] = base.loc + base.scale * noise.to(base.loc.device, base.loc.dtype)


def tiny_lom(seed: int = 0) -> LOM:
    torch.manual_seed(seed)
    emorl = EMORL(num_slots=K, image_size=S, slot_dim=D, stochastic_layers=2, refinement_steps=1, sigma=0.1,
                  encoder_width=8, decoder_hidden=8, prior_hidden=16, refinement_hidden=16, init_gain=1.0)
    return LOM(emorl, scene_dim=8)


def objective() -> GECO:
    return GECO(LOMELBO(), {OBS: GECOConfig(goal=-2.0, beta_max=1.0),
                            ORDERLESS_OBS: EMORL.geco_config(-2.0, warmup_steps=0)})


def _loss_and_grads(lom: LOM, x: torch.Tensor, slot_noise: torch.Tensor):
    # the orderless model's initial-slot noise is a plain torch draw: pin it too
    original = lom.orderless.guide
    lom.orderless.guide = lambda x, plates: original(x, plates, slot_noise=slot_noise.to(x.device))
    try:
        with CPUNoise():
            loss, _ = objective().to(x.device).compute(lom.model, lom.guide, x)
    finally:
        del lom.orderless.guide
    lom.zero_grad()
    loss.backward()
    return loss.detach().cpu(), {n: p.grad.detach().cpu() for n, p in lom.named_parameters() if p.grad is not None}


def test_lom_emorl_loss_and_gradients_match_the_cpu():
    # float64 on both devices: what is compared is the code path, not float32 summation
    # order (a gradient that is a sum of large cancelling terms differs by more than any
    # fixed float32 tolerance from one kernel to another)
    x = torch.rand(B, 3, S, S, dtype=torch.float64) * 2 - 1
    slot_noise = torch.randn(B, K, D, dtype=torch.float64)
    cpu_loss, cpu_grads = _loss_and_grads(tiny_lom().double(), x, slot_noise)
    gpu = tiny_lom().double().to(DEVICE)
    gpu_loss, gpu_grads = _loss_and_grads(gpu, x.to(DEVICE), slot_noise)
    assert all(p.device.type == torch.device(DEVICE).type for p in gpu.parameters())
    torch.testing.assert_close(gpu_loss, cpu_loss, rtol=1e-8, atol=0.0)
    assert cpu_grads.keys() == gpu_grads.keys() and len(cpu_grads) > 10
    for name, grad in cpu_grads.items():
        error = (gpu_grads[name] - grad).norm()
        assert error <= 1e-6 * grad.norm() + 1e-12, f"{name}: |Δgrad| {error:.3g} vs |grad| {grad.norm():.3g}"


def test_emorl_alone_posterior_matches_the_cpu():
    torch.manual_seed(1)
    m = tiny_lom().orderless.double()
    x = torch.rand(B, 3, S, S, dtype=torch.float64) * 2 - 1
    noise = torch.randn(B, K, D, dtype=torch.float64)
    with poutine.block(), CPUNoise():
        cpu = m.guide(x, make_plates(B, K), slot_noise=noise)
        m.to(DEVICE)
        gpu = m.guide(x.to(DEVICE), make_plates(B, K), slot_noise=noise.to(DEVICE))
    torch.testing.assert_close(gpu.loc.cpu(), cpu.loc, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gpu.scale.cpu(), cpu.scale, rtol=1e-8, atol=1e-10)


def test_sampling_and_reconstruction_stay_on_the_device():
    lom = tiny_lom().to(DEVICE).eval()
    out = lom.sample(6, temperature=0.8)
    assert out.images.device.type == torch.device(DEVICE).type and out.images.shape == (6, 3, S, S)
    assert torch.isfinite(out.images).all()
    masks = out.masks.squeeze(2)
    torch.testing.assert_close(masks.sum(1), torch.ones(6, S, S, device=DEVICE))
    rec = lom.reconstruct(torch.rand(2, 3, S, S, device=DEVICE) * 2 - 1)
    assert rec.images.device.type == torch.device(DEVICE).type
    pair = standalone(lom.orderless)
    with poutine.block():
        posterior = pair.guide(torch.rand(2, 3, S, S, device=DEVICE) * 2 - 1)
    assert posterior.loc.device.type == torch.device(DEVICE).type


def test_ari_on_the_device_equals_the_cpu():
    torch.manual_seed(0)
    truth = torch.nn.functional.one_hot(torch.randint(0, 4, (3, S, S)), 4).permute(0, 3, 1, 2).float()
    pred = torch.rand(3, 5, S, S).softmax(1)
    torch.testing.assert_close(ari_fg(truth.to(DEVICE), pred.to(DEVICE), (0,)).cpu(), ari_fg(truth, pred, (0,)),
                               rtol=1e-6, atol=1e-6)


def test_train_on_cuda_writes_a_checkpoint_that_loads_on_the_cpu(tmp_path):
    config = config_from_preset("quickstart", steps=3, batch_size=4, eval_scenes=8, figure_every=2, eval_every=2,
                                eval_every_scenes=8, device=DEVICE, out=str(tmp_path / "run"))
    metrics = train(config, progress=False)
    assert metrics["steps"] == 3 and metrics["ari_fg_orderless"] is not None
    curves = json.loads((tmp_path / "run" / "curves.json").read_text())
    assert curves["eval/step"] == [2, 3]
    module, _ = load_trained(str(tmp_path / "run" / "checkpoint.pt"), device="cpu")
    assert all(p.device.type == "cpu" for p in module.parameters())
    assert torch.isfinite(module.sample(2).images).all()
