"""Evaluating trained modules: held-out metrics, samples and their judging
(:mod:`~lom_pyro.evaluation.assess`, used during training too) and the reports and figures of
``lom-pyro evaluate`` / ``visualize`` (:mod:`~lom_pyro.evaluation.report`). Never imports
training or the command line."""
