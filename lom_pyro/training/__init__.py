"""Training: config and presets → modules → the step loop, with checkpoints/resume, the
scalar log and the held-out monitor. Layout, in dependency order:

* :mod:`~lom_pyro.training.config` — :class:`TrainConfig`, :data:`PRESETS`, TOML files;
* :mod:`~lom_pyro.training.build` — modules and objective from a config, or a checkpoint;
* :mod:`~lom_pyro.training.data` — the dataset, opened once; its resumable batch stream and
  held-out scenes;
* :mod:`~lom_pyro.training.state` — checkpoints (atomic, last N kept) and RNG states;
* :mod:`~lom_pyro.training.log` — ``log.jsonl`` and the curves;
* :mod:`~lom_pyro.training.hooks` — the step loop and the hooks around each step (learning
  rate, free bits, decoder thaw, printing), which the example scripts use as they are;
* :mod:`~lom_pyro.training.loop` — :func:`train` and :func:`resume`: the loop with a run's
  hooks (non-finite steps, log, figures, held-out checks, checkpoints, stopping);
* :mod:`~lom_pyro.training.export`, :mod:`~lom_pyro.training.fit_prior` — pretrained files
  from a run, and a slot prior fitted afterwards.

The command line (:mod:`lom_pyro.cli`) sits above this package; nothing here imports it.
"""

from lom_pyro.training.build import build, load_orderless, load_trained, parameter_groups
from lom_pyro.training.config import PRESETS, TrainConfig, config_from_preset, read_config_file
from lom_pyro.training.data import TrainingBatches, held_out
from lom_pyro.training.loop import resume, train

__all__ = ["TrainConfig", "PRESETS", "config_from_preset", "read_config_file", "build", "parameter_groups",
           "load_orderless", "load_trained", "TrainingBatches", "held_out", "train", "resume"]
