"""Evaluation metrics (plain torch/numpy; scikit-learn only for DCI, imported lazily).

* :func:`ari_fg` — adjusted Rand index on foreground pixels;
* :func:`fid`, :func:`kid`, :func:`frechet_distance` — image-generation quality;
* :func:`dci`, :func:`disentanglement`, :func:`completeness`,
  :func:`match_slots_to_objects` — disentanglement of slot latents;
* :class:`SceneDatabase` — scene retrieval with scene and slot latents;
* :func:`write_labelling_sheet`, :func:`read_labelling_sheet`,
  :func:`structure_accuracy` — ShapeStacks structure accuracy (S-Acc).
"""

from lom_pyro.metrics.ari import ari_fg
from lom_pyro.metrics.dci import completeness, dci, disentanglement, match_slots_to_objects, matched_pairs
from lom_pyro.metrics.fid import fid, frechet_distance, kid
from lom_pyro.metrics.inception import find_inception_weights, load_inception
from lom_pyro.metrics.labels import read_labelling_sheet, write_labelling_sheet
from lom_pyro.metrics.retrieval import SceneDatabase
from lom_pyro.metrics.structure import structure_accuracy

__all__ = [
    "ari_fg",
    "frechet_distance",
    "fid",
    "kid",
    "find_inception_weights",
    "load_inception",
    "dci",
    "disentanglement",
    "completeness",
    "match_slots_to_objects",
    "matched_pairs",
    "SceneDatabase",
    "write_labelling_sheet",
    "read_labelling_sheet",
    "structure_accuracy",
]

