"""DistributedDataParallel through torchrun: 2 gloo processes on the CPU."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from lom_pyro.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

TINY_EMORL = dict(num_slots=3, slot_dim=8, stochastic_layers=1, refinement_steps=1, encoder_width=8,
                  decoder_hidden=8, prior_hidden=8, refinement_hidden=8, sigma=0.1, init_gain=1.0)


def _torchrun(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    with socket.socket() as s:                       # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(port), *args]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


WORKER = textwrap.dedent("""
    import sys, torch, pyro
    import torch.distributed as dist
    from lom_pyro import EMORL, LOM, GECO, LOMELBO
    from lom_pyro.training.distributed import LossModule, join, leave, wrap

    ranks = join("cpu")
    torch.manual_seed(0)
    lom = LOM(EMORL(image_size=16, **{tiny}), scene_dim=8)
    geco = GECO(LOMELBO(), {{"x": -1.0, "x_orderless": -1.0}})
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pyro.set_rng_seed(100 + ranks.rank)              # each rank's own noise
    ddp = wrap(LossModule(lom, geco), ranks, torch.device("cpu"))   # keep it alive until backward has run
    loss, logs = ddp(x[2 * ranks.rank:2 * ranks.rank + 2])
    loss.backward()
    owned = ranks.owns_group
    leave(ranks)                                     # both ranks meet, then the group is gone
    torch.save({{"grads": [p.grad for p in lom.parameters()], "err": logs["err/x"],
                "ema": geco.states["x"].err_ema, "owned": owned, "left": not dist.is_initialized()}},
               f"rank{{ranks.rank}}.pt")
""")


def test_ddp_gradients_are_the_mean_of_the_ranks_and_geco_sees_the_global_error(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER.format(tiny=TINY_EMORL))
    _torchrun(["worker.py"], tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    # the same computation in one process, rank by rank (same weights, halves and noise)
    import pyro

    from lom_pyro import EMORL, GECO, LOM, LOMELBO
    from lom_pyro.training.distributed import LossModule

    pyro.enable_validation(False)
    torch.manual_seed(0)
    lom = LOM(EMORL(image_size=16, **TINY_EMORL), scene_dim=8)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    local, errors = [], []
    for r in (0, 1):
        lom.zero_grad()
        pyro.set_rng_seed(100 + r)
        loss, logs = LossModule(lom, GECO(LOMELBO(), {"x": -1.0, "x_orderless": -1.0}))(x[2 * r:2 * r + 2])
        loss.backward()
        local.append([p.grad.clone() for p in lom.parameters()])
        errors.append(logs["err/x"])
    for a, b, g0, g1 in zip(ranks[0]["grads"], ranks[1]["grads"], *local):
        assert torch.equal(a, b)                                   # synchronised across ranks
        torch.testing.assert_close(a, (g0 + g1) / 2, rtol=1e-4, atol=1e-6)  # = mean of the ranks' gradients
    assert torch.equal(ranks[0]["err"], errors[0]) and torch.equal(ranks[1]["err"], errors[1])
    for rank in ranks:   # GECO's constraint is the all-reduced mean error, the same on every rank
        torch.testing.assert_close(rank["ema"], (errors[0] + errors[1]) / 2)
    assert all(rank["owned"] and rank["left"] for rank in ranks)   # join() made the group, leave() ended it


def test_torchrun_training_keeps_ranks_identical_and_rank0_alone_writes(tmp_path):
    out = tmp_path / "run"
    done = _torchrun(["-m", "lom_pyro.cli", "train", "--no-lom", "--steps", "3", "--batch-size", "4",
                      "--eval-scenes", "4", "--checkpoint-every", "1", "--threads", "1",
                      "--orderless-kwargs", json.dumps(TINY_EMORL), "--out", str(out)], tmp_path)
    # every checkpoint compared the ranks' parameters bit for bit (check_in_sync) before writing
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["step"] == 3 and payload["data_position"] == 12
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 2
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if '"train"' in line] == [0, 2]   # one writer
    assert done.stdout.count("metrics.json") == 1


def test_torchrun_thaws_a_copied_lom_decoder_in_step_on_every_rank(tmp_path):
    out = tmp_path / "run"
    _torchrun(["-m", "lom_pyro.cli", "train", "--orderless-steps", "2", "--steps", "3", "--batch-size", "4",
               "--eval-scenes", "4", "--checkpoint-every", "1", "--threads", "1", "--lom-decoder-init", "orderless",
               "--lom-decoder-frozen-steps", "1", "--orderless-kwargs", json.dumps(TINY_EMORL),
               "--lom-kwargs", '{"scene_dim": 8}', "--out", str(out)], tmp_path)
    # each checkpoint (after every step) compared the ranks' parameters bit for bit, across the thaw
    model = load_checkpoint(out / "checkpoint.pt")["model"]
    stage1 = load_checkpoint(out / "orderless.pt")["model"]
    assert not all(torch.equal(v, stage1[k]) for k, v in model.items() if k.startswith("decoder."))
