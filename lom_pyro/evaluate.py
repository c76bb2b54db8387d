"""Evaluation of a trained module: metrics and figures (§4, appendix A.5–A.7).

:func:`evaluate_module` computes, on held-out scenes, the ARI-FG of the orderless and
of the ordered (LOM) posterior, the test ELBO with its per-site terms, and — on
procedural ``stacks`` — the structure accuracy of τ = 0.8 samples. Works for a
:class:`~lom_pyro.LOM` and for an orderless model alone (the baseline), whose samples
come from its independent slot prior.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lom_pyro.models.lom import LOM

__all__ = ["evaluate_module", "write_figure", "unit_frame", "sample_images", "reconstructions"]

_CHUNK = 64


def _orderless(module: nn.Module) -> nn.Module:
    return module.orderless if isinstance(module, LOM) else module


def unit_frame(module: nn.Module, images: Tensor) -> Tensor:
    """Map images from the module's observation frame to [0, 1] for metrics and figures."""
    observe = getattr(_orderless(module), "observation", None)
    if observe is None:
        lo, hi = -1.0, 1.0
    else:
        ends = observe(torch.tensor([-1.0, 1.0], device=images.device, dtype=images.dtype))
        lo, hi = float(ends[0]), float(ends[1])
    return ((images - lo) / (hi - lo)).clamp(0.0, 1.0)


@torch.no_grad()
def sample_images(module: nn.Module, n: int, temperature: float = 0.8) -> tuple[Tensor, Tensor]:
    """``n`` unconditional samples in [0, 1] and their masks ``(n, K, H, W)``. An orderless
    model alone samples each slot from its independent prior ``N(0, τ² I)``."""
    if isinstance(module, LOM):
        out = module.sample(n, temperature)
        images, masks = out.images, out.masks
    else:
        ref = next(module.parameters())
        z = temperature * torch.randn(n, module.num_slots, module.slot_dim, device=ref.device, dtype=ref.dtype)
        rgb, logits = module.decode(z)
        masks = logits.softmax(dim=1)
        images = (masks * rgb).sum(1)
    return unit_frame(module, images), masks.squeeze(2)


@torch.no_grad()
def reconstructions(module: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Reconstructions in [0, 1] and masks ``(B, K, H, W)`` of the orderless posterior
    (``"orderless"``) and, for a LOM, of the ordered posterior (``"lom"``)."""
    orderless = _orderless(module)
    rec = orderless.reconstruct(x)
    out = {"orderless": (((rec["image"] + 1) / 2).clamp(0, 1), rec["masks"].squeeze(2))}
    if isinstance(module, LOM):
        lom = module.reconstruct(x)
        out["lom"] = (unit_frame(module, lom.images), lom.masks.squeeze(2))
    return out


@torch.no_grad()
def evaluate_module(module: nn.Module, evaluation: dict[str, Any], elbo, dataset: str,
                    temperature: float = 0.8) -> dict[str, Any]:
    """Metrics on held-out scenes; see the module docstring.

    :param evaluation: ``images (N, 3, H, W)`` in [-1, 1], ``masks (N, K, H, W)`` and
        ``background`` channel indices.
    """
    from lom_pyro.metrics.ari import ari_fg
    from lom_pyro.train import programs

    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    images, true_masks = evaluation["images"], evaluation["masks"]
    ari: dict[str, list[Tensor]] = {}
    terms: dict[str, list[Tensor]] = {}
    model, guide = programs(module)
    for start in range(0, images.shape[0], _CHUNK):
        x = images[start:start + _CHUNK].to(device)
        truth = true_masks[start:start + _CHUNK].to(device)
        for name, (_, masks) in reconstructions(module, x).items():
            ari.setdefault(name, []).append(ari_fg(truth, masks, evaluation["background"]))
        for site, term in elbo.terms(model, guide, x).items():
            terms.setdefault(f"{term.kind}/{site}", []).append(term.raw)
    metrics: dict[str, Any] = {"dataset": dataset, "eval_scenes": int(images.shape[0])}
    for name, values in ari.items():
        v = torch.cat(values)
        metrics[f"ari_fg_{name}"] = float(v[~v.isnan()].mean()) if (~v.isnan()).any() else None
    per_site = {k: float(torch.cat(v).mean()) for k, v in terms.items()}
    metrics["test_terms_per_image"] = per_site
    metrics["test_elbo_per_image"] = sum(v if k.startswith("loglik") else -v for k, v in per_site.items())
    if isinstance(module, LOM):
        metrics["test_lom_kl_per_image"] = per_site.get(f"kl/{LOM.SCENE}", 0.0) + per_site.get(f"kl/{LOM.SLOTS}", 0.0)
    if dataset == "stacks":
        from lom_pyro.metrics.structure import structure_accuracy

        samples, _ = sample_images(module, images.shape[0], temperature)
        metrics["structure_accuracy_samples"] = structure_accuracy(samples.cpu(), value_range=(0.0, 1.0))
        metrics["structure_accuracy_data"] = structure_accuracy(((images + 1) / 2).cpu(), value_range=(0.0, 1.0))
        metrics["sample_temperature"] = temperature
    module.train(was_training)
    return metrics


@torch.no_grad()
def write_figure(module: nn.Module, x: Tensor, path: str | Path, temperature: float = 0.8) -> Path:
    """One PNG: inputs, reconstructions and segmentations (masks coloured by slot index)
    of both posteriors, and τ = 0.8 samples with their masks."""
    from lom_pyro.viz import colour_masks, panel

    was_training = module.training
    module.eval()
    rows: dict[str, Tensor] = {"input": ((x + 1) / 2).clamp(0, 1)}
    for name, (rec, masks) in reconstructions(module, x).items():
        rows[f"{name} recon"] = rec
        rows[f"{name} masks"] = colour_masks(masks)
    samples, masks = sample_images(module, x.shape[0], temperature)
    rows[f"samples t={temperature}"] = samples
    rows["sample masks"] = colour_masks(masks)
    module.train(was_training)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    panel({k: v.cpu() for k, v in rows.items()}, path, scale=2)
    return Path(path)
