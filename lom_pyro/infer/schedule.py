"""Training schedules of appendix A.3–A.4 (plain functions of the step)."""

from __future__ import annotations

__all__ = ["learning_rate_factor", "scene_free_bits"]


def learning_rate_factor(step: int, warmup: int = 10_000, decay_every: int = 100_000, decay: float = 0.5) -> float:
    """Linear warm-up for ``warmup`` steps, then ×``decay`` every ``decay_every`` steps
    (LOM-EMORL: 10K, 100K, 0.5). ``decay_every=0`` keeps the rate constant."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return warm * (decay ** (step // decay_every) if decay_every > 0 else 1.0)


def scene_free_bits(step: int, total_steps: int, scene_dim: int, start: float = 0.25, end: float = 0.167,
                    final_steps: int = 25_000) -> float:
    """λ on the LOM scene KL (§3.3, Eq. 26): ``start·Ds``, lowered to ``end·Ds`` for the
    last ``final_steps`` steps of runs longer than that (400K-step paper runs). A run of
    ``final_steps`` or fewer keeps ``start·Ds`` throughout; ``start = 0`` turns free bits off."""
    if start == 0:
        return 0.0
    annealing = total_steps > final_steps and step >= total_steps - final_steps
    return (end if annealing else start) * scene_dim
