"""Tiny training runs that several test modules start: the command-line flags of a 3-step
run, and what did not train in one."""

import torch

from lom_pyro.training import build, load_trained

TINY = ["--steps", "3", "--batch-size", "4", "--eval-scenes", "8", "--figure-every", "2", "--threads", "1"]


def still_groups(out) -> list[str]:
    """The parameter groups (modules owning parameters directly) of a 3-step run in ``out``
    that did not move from their initial values."""
    trained, config = load_trained(str(out / "checkpoint.pt"))
    assert config.steps == 3
    torch.manual_seed(config.seed)
    initial, _ = build(config)
    before = dict(initial.named_parameters())
    groups: dict[str, bool] = {}
    for name, p in trained.named_parameters():
        group = name.rsplit(".", 1)[0]
        groups[group] = groups.get(group, False) or not torch.equal(p, before[name])
    return [g for g, moved in groups.items() if not moved]
