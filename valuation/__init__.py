"""vpjax data economics: every datapoint valued, tiered, priced and trued up.

Modules (import what you need; nothing heavy is imported here):

* :mod:`valuation.novelty` — embedding novelty (exact chunked k-NN over an encoder ensemble) and
  state–action coverage novelty, as (init, update, score) transforms.
* :mod:`valuation.causal_gain` — vmapped Gaussian-MLP ensemble; information gain and TracIn
  prediction-error reduction.
* :mod:`valuation.bayes_linear` — sklearn-exact BayesianRidge in JAX, rolling window, lax.scan
  streams, vectorized replay; E[ΔMPL], interval, κ.
* :mod:`valuation.tiering` — tiers, tier statistics, threshold calibration.
* :mod:`valuation.knn` — the exact, certified k-NN search behind embedding novelty.
* :mod:`valuation.pricing`, :mod:`valuation.ledger`, :mod:`valuation.csv_formats` — quotes,
  true-ups, reports; the SQLite ledger; the CSV files (readers that validate, atomic writers).
* :func:`valuation.quote.quote_batch` — value model fit on history, then quotes for a batch (the
  quote CLI and video-to-policy both use it).
* :mod:`valuation.simulator` — the sharing vs withholding pricing simulation.
* :mod:`valuation.truth` — predicted value scored against value measured by retraining (Spearman,
  LDS, interval coverage, tier confusion, true-ups), against the goals they are held to.
* CLIs: ``python -m valuation.quote | reconcile | simulate | report | compare_tiers``; a user's
  error (:mod:`valuation.errors`) is one line on stderr and exit status 2.

``valuation`` works on arrays and never imports ``envs`` or ``train``.
"""
