"""The model: everything that produces, stores and judges a delivery-time model.

- ``features``: the feature contract and the one way rows are built (training and serving);
- ``model``: ``DeliveryTimeModel``, point estimate + conformalised 90 % interval
  (``intervals``); ``compiled_runtime`` evaluates the same trees as a TL2cgen-compiled library
  built at registration, ``treelite_runtime`` through Treelite GTIL (small batches), and
  ``runtime_selection`` picks one (``bench_runtime`` times them all);
- ``drift_stats``: reference distributions stored with the model, and the PSI;
- ``training/``: synthetic order history, time split, fitting, model card, registration;
- ``store/``: the verified artifact in BentoML's model store, and its stage labels;
- ``promotion/``: the gate that compares a candidate with production, promote and roll back;
- ``settings``: which model to serve and how to evaluate it.

Nothing here knows about HTTP; the serving process imports ``features``, ``model``, the
runtimes, ``drift_stats``, ``store`` and ``settings``, never ``training`` or ``promotion``.
"""
