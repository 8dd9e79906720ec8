"""Bayesian failure probabilities, risk and remediation priorities (PyMC).

- :mod:`twin.bayes.evidence`: incident logs, campaign runs and chaos results -> tidy frames,
  with one-line errors naming the file, row and column.
- :mod:`twin.bayes.failure`: the models (fault occurrence, impact given a fault,
  time to failure), each ``build_*_model(tidy_df, priors) -> pm.Model`` with named coords.
- :mod:`twin.bayes.fit`: sampling (nutpie, PyMC NUTS) and a fast variational option.
- :mod:`twin.bayes.checks`: r-hat, effective sample size, divergences; refuse on failure.
- :mod:`twin.bayes.risk`: posterior simulation into risk, priorities and scenario files.

PyMC, ArviZ and nutpie are imported inside the functions that need them, so importing
this package (and ``twin --help``) stays fast.
"""
