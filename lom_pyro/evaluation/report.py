"""What ``lom-pyro evaluate`` and ``visualize`` report of a trained module beyond
:mod:`~lom_pyro.evaluation.assess`: DCI of the slots, FID/KID of samples, the figures, and
the Markdown table of the metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lom_pyro.evaluation.assess import CHUNK, sample_images, unit_frame, write_figure
from lom_pyro.models.lom import LOM

__all__ = ["dci_of_slots", "fid_of_samples", "visualize", "markdown_table"]

_DISCRETE_FACTORS = {"shape", "material", "color", "colour", "size", "level"}



@torch.no_grad()
def dci_of_slots(module: LOM, evaluation: dict[str, Any]) -> dict[str, Any]:
    """DCI of the ordered slot means against object factors, slots matched to objects by
    IoU of their masks (Hungarian, small objects dropped)."""
    from lom_pyro.metrics.dci import dci, match_slots_to_objects, matched_pairs

    names = [n for n in evaluation["factor_names"] if n not in ("visible", "visibility")]
    columns = [evaluation["factor_names"].index(n) for n in names]
    device = next(module.parameters()).device
    codes, factors = [], []
    for start in range(0, evaluation["images"].shape[0], CHUNK):
        x = evaluation["images"][start:start + CHUNK].to(device)
        rec = module.reconstruct(x)
        truth = evaluation["masks"][start:start + CHUNK]
        assignment = match_slots_to_objects(rec.masks.squeeze(2).cpu(), truth,
                                            background_channels=evaluation["background"])
        c, f = matched_pairs(rec.z.cpu(), evaluation["factors"][start:start + CHUNK][..., columns], assignment)
        codes.append(c)
        factors.append(f)
    codes_t, factors_t = torch.cat(codes), torch.cat(factors)
    if codes_t.shape[0] < 20:
        return {"skipped": f"only {codes_t.shape[0]} slots matched an object; DCI needs more"}
    result = dci(codes_t, factors_t, [n in _DISCRETE_FACTORS for n in names])
    return {"disentanglement": result.disentanglement, "completeness": result.completeness,
            "informativeness": dict(zip(names, map(float, result.informativeness))),
            "discrete": dict(zip(names, result.discrete)), "matched_objects": int(codes_t.shape[0])}


def fid_of_samples(module: nn.Module, evaluation: dict[str, Any], n: int, temperature: float,
                   inception: str | None = None) -> dict[str, Any]:
    """FID and KID of ``n`` samples at ``temperature`` against ``n`` held-out images, or why
    they were skipped (no InceptionV3 weights found)."""
    from lom_pyro.metrics.fid import fid, kid
    from lom_pyro.metrics.inception import find_inception_weights

    try:
        weights = find_inception_weights(inception)
    except FileNotFoundError as err:
        return {"skipped": str(err)}
    real = (evaluation["images"] + 1) / 2
    n = min(n, real.shape[0])
    sampler = lambda batch: sample_images(module, batch, temperature)[0].cpu()
    f = fid(real, sampler, n_real=n, n_fake=n, weights=weights)
    k = kid(real, sampler, n_real=n, n_fake=n, weights=weights, subset_size=min(1000, n))
    return {"fid": f.value, "kid": k.value, "kid_std": k.std, "n_real": f.n_real, "n_fake": f.n_fake,
            "preprocessing": f.preprocessing, "feature_source": f.feature_source,
            "note": "paper protocol is 10K real vs 10K generated" if n < 10_000 else ""}


@torch.no_grad()
def visualize(module: LOM, evaluation: dict[str, Any], out: Path, n: int = 8, pca: int = 6) -> list[Path]:
    """Samples with masks, a temperature sweep, SLERP strips (PNG and GIF), reconstructions
    and segmentations of both posteriors, and scene retrieval (appendix A.6–A.7)."""
    from lom_pyro.metrics.retrieval import SceneDatabase
    from lom_pyro.viz import colour_masks, panel, save_gif

    out.mkdir(parents=True, exist_ok=True)
    device = next(module.parameters()).device
    written = [write_figure(module, evaluation["images"][:n].to(device), out / "reconstructions.png")]
    images, masks = sample_images(module, n, 0.8)
    panel({"samples t=0.8": images.cpu(), "masks": colour_masks(masks.cpu())}, out / "samples.png", scale=2)
    written.append(out / "samples.png")
    sweep = {f"t={t}": sample_images(module, n, t)[0].cpu() for t in (0.6, 0.7, 0.8, 0.9, 1.0)}
    panel(sweep, out / "temperature_sweep.png", scale=2)
    written.append(out / "temperature_sweep.png")
    ends = module.sample(2 * 3, 0.8).s
    strips, frames = {}, []
    for row in range(3):
        gen = module.interpolate(ends[2 * row], ends[2 * row + 1], steps=n)
        strips[f"slerp {row + 1}"] = unit_frame(module, gen.images).cpu()
        strips[f"masks {row + 1}"] = colour_masks(gen.masks.squeeze(2).cpu())
        frames.append(unit_frame(module, gen.images).cpu())
    panel(strips, out / "slerp.png", scale=2)
    save_gif([torch.cat([f[i] for f in frames], dim=-1) for i in range(n)], out / "slerp.gif", duration=150)
    written += [out / "slerp.png", out / "slerp.gif"]
    # retrieval: database of (s, z) posterior means, query = first held-out scene, re-rank by its slot 0
    db_images = evaluation["images"]
    encs = [module.encode(db_images[i:i + CHUNK].to(device)) for i in range(0, db_images.shape[0], CHUNK)]
    s = torch.cat([e.scene_loc for e in encs]).cpu()
    z = torch.cat([e.slots_loc for e in encs]).cpu()
    database = SceneDatabase(s[1:], z[1:], n_components=min(pca, s.shape[0] - 1, s.shape[1]))
    near = database.query(s[0], k=min(5, len(database)))
    slot = int(module.reconstruct(db_images[:1].to(device)).masks[0, :, 0].flatten(1).sum(-1).argsort()[-2])
    reranked = database.rerank(near, z[0, slot])
    unit = ((db_images + 1) / 2).clamp(0, 1)
    panel({"query": unit[:1], "nearest (scene)": unit[1:][torch.as_tensor(near.indices)],
           f"re-ranked (slot {slot})": unit[1:][torch.as_tensor(reranked.indices)]}, out / "retrieval.png", scale=2)
    written.append(out / "retrieval.png")
    return written


def markdown_table(metrics: dict[str, Any], prefix: str = "") -> str:
    """Flatten nested metrics into a two-column Markdown table."""
    rows = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, float):
            rows.append(f"| {key} | {value:.4g} |")
        else:
            rows.append(f"| {key} | {' '.join(str(value).split())} |")

    walk(metrics, prefix)
    return "| metric | value |\n|---|---|\n" + "\n".join(rows) + "\n"
