"""The structure judges against blind human labels (docs/metrics.md, "Calibrating the judges").

Two steps, each a subcommand:

``build``
    Makes the labelled set: 460 32-px images from eleven kinds of source (real procedural
    stacks, real stacks blurred, samples of EMORL alone and of three LOMs at τ = 0.5 / 0.8 /
    1.0, reconstructions of two posteriors, decoded posterior means plus prior-scale noise),
    shuffled with a fixed seed. Writes ``images.npz`` (``uint8`` ``(N, 32, 32, 3)``, the
    images that were labelled), ``key.json`` (where each image came from — not to be opened
    before labelling ends) and the numbered contact sheets ``sheets/sheet_XX.png`` that a
    person labels. Every draw is seeded, so the set is regenerated bit-identically on the
    same machine and torch build (within one grey level on another machine); the
    committed ``images.npz`` is the record either way.

``score``
    Reads ``labels.json`` (``{"labellers": {name: "PBF..."}}``, one letter per image from
    each blind labeller; the label of record is the majority), splits the images into two
    halves fixed before any threshold was chosen (even numbers tune, odd numbers report),
    chooses the ``touching`` judge's thresholds on the tuning half only (a grid, most
    agreement with P ∪ B), and reports agreement, precision and recall of both judges on
    each half, per source, beside the agreement between labellers. ``sharp`` is not tuned.
    The third judge, ``masks``, needs each image's slot masks, which are not stored: the
    set is built again (refused unless it matches ``images.npz`` within one grey level),
    its thresholds chosen on the tuning half in the same way (``MASK_GRID``), and it is
    reported beside the other two against P ∪ B.

``--set diffusion`` (2026-12-06) is a second, later set of 144 images, labelled the same way:
samples of the diffusion-prior LOMs shipped after the first set was labelled
(``stacks32_slot_diffusion``, ``stacks32_diffusion``), among real stacks and ``stacks32_ar``
samples. It is wholly held out: its ``score`` chooses nothing and reports the library's
thresholds, per source, so the judges' verdicts on the shipped models' samples are checked
against people's.

``--set default`` is a third (168 images): 72 samples each at τ = 0.8 of
``stacks32_slot_diffusion_wide`` (the default pretrained LOM from 2026-12-06) and of
``stacks32_slot_diffusion`` (the default before it), among 24 real stacks; also wholly held out.

``--set corrector`` is a fourth (168 images): 72 samples each at τ = 0.8 of the default LOM by
the plain reverse chain and with a Langevin corrector step before each reverse step (the
diffusion priors' ``corrector_snr`` 0.16; source names ending ``+corrector``), among 24 real
stacks. ``--set ceiling`` is a fifth (168 images): the default LOM's decoder on its own aligned
posterior means of 72 fresh scenes (what any prior on it can reach at best) and 72 of its
samples at τ = 0.8, among 24 real stacks. Both are wholly held out.

    python benchmarks/judge_calibration.py build
    python benchmarks/judge_calibration.py score
    python benchmarks/judge_calibration.py score --set diffusion   # -> results/judges/diffusion
    python benchmarks/judge_calibration.py score --set default     # -> results/judges/default
    python benchmarks/judge_calibration.py score --set corrector   # -> results/judges/corrector
    python benchmarks/judge_calibration.py score --set ceiling     # -> results/judges/ceiling
    python benchmarks/judge_calibration.py pooled                  # -> results/judges/pooled.json

``pooled`` reads the committed sets (their images and labels, nothing rebuilt) and reports the
two pixel judges on every held-out image at once: the first set's odd half and the four later
sets whole, beside each set on its own. The ``masks`` judge needs masks that are not stored,
so it is left out there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from lom_pyro import LOM
from lom_pyro.evaluation.assess import reconstructions, sample_images, unit_frame
from lom_pyro.data.procedural import generate
from lom_pyro.metrics.labels import contact_sheet
from lom_pyro.metrics.mask_structure import MaskCriterion, mask_flags
from lom_pyro.metrics.structure import TouchingCriterion, sharp_flags, touching_flags
from lom_pyro.training import load_trained

SIZE = 32
TEMPERATURES = (0.5, 0.8, 1.0)
PER_SHEET = 48
SHUFFLE_SEED = 2026_12_04
RUNS = Path(__file__).parent / "results" / "long"
DEFAULT_OUT = Path(__file__).parent / "results" / "judges"
RUN_NAMES = ("emorl", "lom_lstm_prior")   # recorded runs, read from their checkpoints in RUNS

#: where each image comes from and how many: (source, count); models at the three temperatures
SAMPLES = {"emorl": 20, "stacks32": 20, "stacks32_ar": 30, "lom_lstm_prior": 20}
#: the second set's models (2026-12-06): the shipped diffusion priors, and stacks32_ar beside them
DIFFUSION_SAMPLES = {"stacks32_slot_diffusion": 16, "stacks32_diffusion": 12, "stacks32_ar": 10}
#: the third set's models: the default shipped LOM and the one it replaced, at τ = 0.8 only
DEFAULT_SAMPLES = {"stacks32_slot_diffusion_wide": 72, "stacks32_slot_diffusion": 72}
#: a source drawn with its diffusion prior's Langevin corrector at Song et al.'s ratio; every
#: other diffusion source is drawn by the plain reverse chain (the priors' default)
CORRECTED, CORRECTOR_SNR = "+corrector", 0.16
#: the fourth set: the default LOM by the plain chain and with the corrector, at τ = 0.8 only
CORRECTOR_SAMPLES = {"stacks32_slot_diffusion_wide": 72, f"stacks32_slot_diffusion_wide{CORRECTED}": 72}
BLUR_SIGMAS = (0.7, 1.2, 2.0, 3.0)   # px; 10 real stacks each
NOISE_FRACTIONS = (0.0, 0.4, 0.8)    # decoded posterior means + c·σ_p noise; 20 scenes each
MAX_SLOTS = 8                        # masks of every source padded to this many slots


def _model(name: str) -> torch.nn.Module:
    if name in RUN_NAMES:
        return load_trained(str(RUNS / name / "checkpoint.pt"))[0]
    lom = LOM.from_pretrained(name.removesuffix(CORRECTED)).eval()   # a shipped pretrained LOM
    if name.endswith(CORRECTED):
        lom.slot_prior.corrector_snr = CORRECTOR_SNR
    return lom


def _u8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [0, 1] -> ``uint8`` ``(N, H, W, 3)``, the labelled form."""
    return np.round(images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).astype(np.uint8)


def _pad(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Masks ``(N, K, H, W)`` (or the models' ``(N, K, 1, H, W)``) as float16 with
    ``MAX_SLOTS`` slots, empty slots added: every source in one array."""
    m = masks.squeeze(2).float().cpu().numpy() if isinstance(masks, torch.Tensor) else masks.astype(np.float32)
    return np.concatenate([m, np.zeros((len(m), MAX_SLOTS - m.shape[1], *m.shape[2:]), m.dtype)], 1).astype(np.float16)


class _Collector:
    """Images with their sources' masks and names, gathered in order, then shuffled."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.sources: list[str] = []

    def add(self, batch: np.ndarray, batch_masks, source: str) -> None:
        self.images.append(batch)
        self.masks.append(_pad(batch_masks))
        self.sources.extend([source] * len(batch))

    def add_real(self, count: int, seed: int) -> None:
        """``count`` real procedural stacks with their true masks."""
        scenes = generate("stacks", count, SIZE, seed=seed)
        self.add(scenes.images, scenes.masks, "real")

    def add_samples(self, samples: dict[str, int], seed: int, temperatures=TEMPERATURES) -> None:
        """``count`` samples of each model at each temperature, each draw seeded."""
        for m, (name, count) in enumerate(samples.items()):
            module = _model(name)
            for t, tau in enumerate(temperatures):
                torch.manual_seed(seed + 1000 * m + t)
                sampled, sampled_masks = sample_images(module, count, tau)
                self.add(_u8(sampled), sampled_masks, f"{name}_t{tau:g}")

    def shuffled(self, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        order = np.random.default_rng(seed).permutation(len(self.sources))
        return np.concatenate(self.images)[order], np.concatenate(self.masks)[order], [self.sources[i] for i in order]


@torch.no_grad()
def build_first_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The labelled images, each with the slot masks of its source (the real scenes'
    own, a model's decoded masks), and the sources, in the shuffled order."""
    got = _Collector()
    got.add_real(40, seed=20_001)
    real = generate("stacks", 10 * len(BLUR_SIGMAS), SIZE, seed=20_002)
    for i, sigma in enumerate(BLUR_SIGMAS):
        chunk = real.images[10 * i:10 * (i + 1)].astype(np.float64)
        blurred = ndimage.gaussian_filter(chunk, sigma=(0, sigma, sigma, 0), mode="nearest")
        got.add(np.round(blurred).clip(0, 255).astype(np.uint8), real.masks[10 * i:10 * (i + 1)],
                f"real_blur_{sigma:g}")
    got.add_samples(SAMPLES, seed=0)
    scenes = generate("stacks", 50, SIZE, seed=20_003).model_images()
    torch.manual_seed(7)
    ar = _model("stacks32_ar")
    recon, recon_masks = reconstructions(ar, scenes[:30])["lom"]
    got.add(_u8(recon), recon_masks, "recon_stacks32_ar")
    recon, recon_masks = reconstructions(_model("emorl"), scenes[30:])["orderless"]
    got.add(_u8(recon), recon_masks, "recon_emorl")
    x = generate("stacks", 20 * len(NOISE_FRACTIONS), SIZE, seed=20_004).model_images()
    for i, c in enumerate(NOISE_FRACTIONS):
        torch.manual_seed(100 + i)
        enc = ar.encode(x[20 * i:20 * (i + 1)])
        _, prior_scale = ar.prior_given(enc.scene_loc, enc.slots_loc)
        z = enc.slots_loc + c * prior_scale * torch.randn_like(enc.slots_loc)
        rendered = ar.render(z)
        got.add(_u8(unit_frame(ar, rendered.images)), rendered.masks, f"posterior_means_noise_{c:g}")
    return got.shuffled(SHUFFLE_SEED)


@torch.no_grad()
def _samples_among_real(real: tuple[int, int], samples: dict[str, int], seed: int, shuffle: int,
                        temperatures: tuple[float, ...] = (0.8,)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A later set: ``real = (count, seed)`` real stacks, then the models' samples drawn from
    ``seed``, shuffled by ``SHUFFLE_SEED + shuffle``."""
    got = _Collector()
    got.add_real(*real)
    got.add_samples(samples, seed=seed, temperatures=temperatures)
    return got.shuffled(SHUFFLE_SEED + shuffle)


def build_diffusion_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The second set: samples of the diffusion-prior LOMs, shipped after the first set was
    labelled, among real stacks and ``stacks32_ar`` samples so that a labeller cannot tell
    the sources apart by their share. All of it is held out: no threshold is chosen on it."""
    return _samples_among_real((30, 20_011), DIFFUSION_SAMPLES, 5000, 1, TEMPERATURES)


def build_default_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The third set: samples at the bar's τ = 0.8 of the default pretrained LOM from
    2026-12-06 and of the default it replaced, among real stacks: what people call clean."""
    return _samples_among_real((24, 20_021), DEFAULT_SAMPLES, 9000, 2)


def build_corrector_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The fourth set: the default LOM's samples at τ = 0.8 by the plain reverse chain and
    with the Langevin corrector before each step, among real stacks: do people see the
    corrector's gain that the sharp judge measures?"""
    return _samples_among_real((24, 20_031), CORRECTOR_SAMPLES, 9500, 3)


@torch.no_grad()
def build_ceiling_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The fifth set: the default LOM's decoder on its own aligned posterior means of fresh
    scenes (the ceiling any prior on it can reach) beside its samples at τ = 0.8, among real
    stacks: is what people see as soft the prior's doing or the decoder's?"""
    got = _Collector()
    got.add_real(24, seed=20_041)
    lom = _model("stacks32_slot_diffusion_wide")
    torch.manual_seed(9700)
    rendered = lom.render(lom.encode(generate("stacks", 72, SIZE, seed=20_042).model_images()).slots_loc)
    got.add(_u8(unit_frame(lom, rendered.images)), rendered.masks, "posterior_means")
    got.add_samples({"stacks32_slot_diffusion_wide": 72}, seed=9800, temperatures=(0.8,))
    return got.shuffled(SHUFFLE_SEED + 4)


#: the labelled sets: the first (tuning and held-out halves) and later, wholly held-out ones
SETS = {"first": build_first_set, "diffusion": build_diffusion_set, "default": build_default_set,
        "corrector": build_corrector_set, "ceiling": build_ceiling_set}


def build_set(name: str = "first") -> tuple[np.ndarray, np.ndarray, list[str]]:
    return SETS[name]()


def build(out: Path, which: str = "first") -> None:
    images, _, sources = build_set(which)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "images.npz", images=images)
    (out / "key.json").write_text(json.dumps({"note": "open only after labelling", "sources": sources}, indent=0))
    for first in range(0, len(images), PER_SHEET):
        chunk = torch.from_numpy(images[first:first + PER_SHEET]).permute(0, 3, 1, 2).float() / 255
        (out / "sheets").mkdir(exist_ok=True)
        contact_sheet(chunk, 8, 4, first_number=first).save(out / "sheets" / f"sheet_{first // PER_SHEET:02d}.png")
    print(f"{len(images)} images, {len(set(sources))} sources, sheets in {out / 'sheets'}")


# ----------------------------------------------------------------------------- scoring

#: the grid the touching judge's thresholds are chosen from (on the tuning half only)
GRID = {
    "foreground": (0.08, 0.1, 0.15),
    "link": (0.03, 0.04, 0.06),
    "flat": (0.1, 0.12, 0.16),
    "block_area": (0.004, 0.006, 0.01),
    "gap_fraction": (0.15, 0.2, 0.25),
}


def agreement(flags: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    tp, fp = int((flags & truth).sum()), int((flags & ~truth).sum())
    fn = int((~flags & truth).sum())
    return {"n": int(len(flags)), "agreement": float((flags == truth).mean()) if len(flags) else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "judge_rate": float(flags.mean()) if len(flags) else float("nan"),
            "label_rate": float(truth.mean()) if len(flags) else float("nan")}


#: the grid the ``masks`` judge's thresholds are chosen from (on the tuning half only)
MASK_GRID = {
    "foreground": (0.15, 0.2, 0.25),
    "block_area": (0.004, 0.006),
    "one_piece": (0.7, 0.8, 0.9),
    "confidence": (0.2, 0.4),
    "distinct": (0.02, 0.1),
    "gap_fraction": (0.03, 0.06, 0.1),
}


def tune(judge, make, grid: dict, truth: np.ndarray):
    """The thresholds of ``grid`` (built by ``make``) whose verdicts ``judge(criterion)``
    agree most with ``truth``, ties broken by the smaller of precision and recall."""
    best = None
    for values in itertools.product(*grid.values()):
        criterion = make(**dict(zip(grid, values)))
        a = agreement(judge(criterion), truth)
        score = (a["agreement"], min(a["precision"], a["recall"]))
        if best is None or score > best[0]:
            best = (score, criterion)
    assert best is not None
    return best[1], best[0][0]


def report(images, masks, sources, labels, halves: dict[str, np.ndarray]) -> dict:
    """Each judge (its default thresholds) against the labels, per half and per source."""
    judged = {"touching": touching_flags(images), "sharp": sharp_flags(images), "masks": mask_flags(images, masks)}
    truth = {**truths(labels), "masks": truths(labels)["touching"]}
    out: dict = {}
    for judge, flags in judged.items():
        out[judge] = {}
        for half, sel in halves.items():
            per_source = {src: agreement(flags[sel & (sources == src)], truth[judge][sel & (sources == src)])
                          for src in sorted(set(sources))}
            out[judge][half] = {"all": agreement(flags[sel], truth[judge][sel]), "per_source": per_source}
    out["sharp_implies_touching_exceptions"] = np.flatnonzero(judged["sharp"] & ~judged["touching"]).tolist()
    return out


def truths(labels: np.ndarray) -> dict[str, np.ndarray]:
    """What each pixel judge must agree with: ``touching`` with P ∪ B, ``sharp`` with P."""
    return {"touching": np.isin(labels, ["P", "B"]), "sharp": labels == "P"}


def set_folder(which: str, root: Path = DEFAULT_OUT) -> Path:
    """Where a labelled set lives: the first at ``root``, a later one in its subfolder."""
    return root if which == "first" else root / which


def majority(letters: str) -> str:
    """The label of record: the letter at least two labellers gave; ``B`` when all differ
    (the one label that agrees with the majority on both questions)."""
    for letter in "PBF":
        if letters.count(letter) * 2 > len(letters):
            return letter
    return "B"


def read_labels(path: Path, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The majority labels ``(n,)`` and each labeller's ``(n,)``, checked."""
    raw = json.loads(path.read_text()).get("labellers")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected {{\"labellers\": {{name: one letter per image}}}}")
    for name, letters in raw.items():
        if not isinstance(letters, str) or len(letters) != n or set(letters) - set("PBF"):
            raise ValueError(f"{path}: labeller {name!r} must give one of P, B, F for each of the {n} images")
    per_labeller = {name: np.array(list(letters)) for name, letters in raw.items()}
    votes = ["".join(letters[i] for letters in raw.values()) for i in range(n)]
    return np.array([majority(v) for v in votes]), per_labeller


def between_labellers(per_labeller: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """How often two labellers agree, on each question (the ceiling for any judge)."""
    out = {}
    names = sorted(per_labeller)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = per_labeller[a], per_labeller[b]
            out[f"{a}-{b}"] = {"touching": float((np.isin(x, ["P", "B"]) == np.isin(y, ["P", "B"])).mean()),
                               "sharp": float(((x == "P") == (y == "P")).mean()), "exact": float((x == y).mean())}
    return out


def score(out: Path, which: str = "first") -> dict:
    images = np.load(out / "images.npz")["images"]
    sources = np.array(json.loads((out / "key.json").read_text())["sources"])
    labels, per_labeller = read_labels(out / "labels.json", len(images))
    # the masks are not stored: the set is built again and each image gets its source's masks
    rebuilt, masks, rebuilt_sources = build_set(which)
    if rebuilt_sources != sources.tolist() or np.abs(rebuilt.astype(int) - images).max() > 1:
        raise ValueError(f"{out}: the set built again differs from images.npz (not the same sources or models)")
    result = {"benchmark": "judge_calibration", "set": which, "date": time.strftime("%Y-%m-%d"),
              "machine": platform.machine(), "images": int(len(labels)),
              "labels": {k: int((labels == k).sum()) for k in "PBF"},
              "between_labellers": between_labellers(per_labeller)}
    print(f"labels of record (majority of {len(per_labeller)}): {result['labels']}; between labellers "
          + "; ".join(f"{k} touching {v['touching']:.3f} sharp {v['sharp']:.3f}"
                      for k, v in result["between_labellers"].items()))
    held_out = held_out_of(which, len(labels))
    if which == "first":   # even numbers tune, odd numbers report: fixed before any threshold was chosen
        halves = {"tune": ~held_out, "held_out": held_out}
        result.update(choose_thresholds(images[~held_out], masks[~held_out], labels[~held_out]))
    else:   # a later set only reports the library's thresholds, chosen on the first set's tuning half
        halves = {"held_out": held_out}
    result.update(rebuilt_pixels_differing_by_one_level=int((rebuilt != images).sum()),
                  **report(images, masks, sources, labels, halves))
    (out / "calibration.json").write_text(json.dumps(result, indent=1))
    print(f"{'judge':<9}{'half':<10}{'agree':>7}{'prec':>7}{'recall':>7}{'judge%':>8}{'label%':>8}")
    for judge in ("touching", "sharp", "masks"):
        for half in halves:
            a = result[judge][half]["all"]
            print(f"{judge:<9}{half:<10}{a['agreement']:>7.3f}{a['precision']:>7.3f}{a['recall']:>7.3f}"
                  f"{a['judge_rate']:>8.3f}{a['label_rate']:>8.3f}")
    print("held out, per source (agreement of touching / sharp / masks; sharp's rate / the labels' P rate; n):")
    for src, a in result["touching"]["held_out"]["per_source"].items():
        b, c = result["sharp"]["held_out"]["per_source"][src], result["masks"]["held_out"]["per_source"][src]
        print(f"  {src:<28}{a['agreement']:>6.2f} / {b['agreement']:.2f} / {c['agreement']:.2f}"
              f"   {b['judge_rate']:.2f} / {b['label_rate']:.2f}  n={a['n']}")
    print(f"sharp passes, touching fails: images {result['sharp_implies_touching_exceptions']}")
    return result


def held_out_of(which: str, n: int) -> np.ndarray:
    """The images of a set that no threshold was chosen on: the first set's odd half, a later set whole."""
    return np.arange(n) % 2 == 1 if which == "first" else np.ones(n, bool)


def with_specificity(flags: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """:func:`agreement` and the share of the label's negatives the judge rejects: where most
    images are positives, agreement and precision alone say little about the rest."""
    negatives = int((~truth).sum())
    return {**agreement(flags, truth),
            "specificity": int((~flags & ~truth).sum()) / negatives if negatives else float("nan")}


def pooled(root: Path = DEFAULT_OUT, out: Path | None = None) -> dict:
    """``touching`` and ``sharp`` against the labels on the held-out images of every committed
    set under ``root``, each set alone and all together; writes ``out`` (``root/pooled.json``)."""
    per_set, flags, truth = {}, {"touching": [], "sharp": []}, {"touching": [], "sharp": []}
    for which in SETS:
        folder = set_folder(which, root)
        images = np.load(folder / "images.npz")["images"]
        labels, _ = read_labels(folder / "labels.json", len(images))
        keep = held_out_of(which, len(images))
        judged = {"touching": touching_flags(images[keep]), "sharp": sharp_flags(images[keep])}
        expected = truths(labels[keep])
        per_set[which] = {judge: with_specificity(judged[judge], expected[judge]) for judge in judged}
        for judge in judged:
            flags[judge].append(judged[judge])
            truth[judge].append(expected[judge])
    together = {judge: with_specificity(np.concatenate(flags[judge]), np.concatenate(truth[judge]))
                for judge in flags}
    result = {"benchmark": "judge_calibration_pooled", "date": time.strftime("%Y-%m-%d"),
              "held_out": "the first set's odd-numbered half and every later set whole",
              "per_set": per_set, "all_held_out": together}
    (out or root / "pooled.json").write_text(json.dumps(result, indent=1))
    print(f"{'set':<11}{'n':>5}  " + "  ".join(f"{judge}: agree  prec recall  spec label%" for judge in flags))
    for name, row in [*per_set.items(), ("all", together)]:
        print(f"{name:<11}{row['touching']['n']:>5}  " + "  ".join(
            f"{' ' * len(judge)}{r['agreement']:>8.3f}{r['precision']:>6.3f}{r['recall']:>7.3f}{r['specificity']:>6.3f}"
            f"{r['label_rate']:>7.3f}" for judge, r in ((j, row[j]) for j in flags)))
    return result


def choose_thresholds(images: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> dict:
    """The touching and masks judges' grid points with the most agreement on the tuning
    half's images, masks and labels; the library's defaults are set to them by hand, and
    reported beside."""
    truth = np.isin(labels, ["P", "B"])
    started = time.perf_counter()
    criterion, tuned_agreement = tune(lambda c: touching_flags(images, criterion=c), TouchingCriterion, GRID, truth)
    mask_criterion, mask_agreement = tune(lambda c: mask_flags(images, masks, criterion=c), MaskCriterion,
                                          MASK_GRID, truth)
    print(f"touching thresholds chosen on the tuning half: {criterion.__dict__} (agreement {tuned_agreement:.3f});"
          f" the report uses the library's default {TouchingCriterion().__dict__}")
    print(f"masks thresholds chosen on the tuning half: {mask_criterion.__dict__} (agreement {mask_agreement:.3f});"
          f" the report uses the library's default {MaskCriterion().__dict__}")
    return {"touching_criterion_chosen_on_tune_half": criterion.__dict__, "grid": GRID,
            "default_criterion": TouchingCriterion().__dict__,
            "masks_criterion_chosen_on_tune_half": mask_criterion.__dict__, "masks_grid": MASK_GRID,
            "masks_default_criterion": MaskCriterion().__dict__,
            "tuning_seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("build", "score", "pooled"))
    parser.add_argument("--set", default="first", choices=sorted(SETS),
                        help="build and score: first: the set the thresholds were chosen on (half of it); "
                             "diffusion, default, corrector, ceiling: later, wholly held-out sets of the "
                             "diffusion-prior LOMs' samples (pooled reads them all)")
    parser.add_argument("--out", help="build and score: folder of the set, key and labels (default: "
                                      "benchmarks/results/judges, and its subfolder named after a later set); "
                                      "pooled: the folder of the first set, the later ones in its subfolders")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.step == "pooled":
        pooled(Path(args.out) if args.out else DEFAULT_OUT)
        return
    out = Path(args.out) if args.out else set_folder(args.set)
    (build if args.step == "build" else score)(out, args.set)


if __name__ == "__main__":
    main()
