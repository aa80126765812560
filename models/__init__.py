"""The model: everything that produces, stores and judges a delivery-time model.

- ``contract/``: the feature contract -- request fields and how each becomes a model input,
  declared once in YAML (``spec``, ``loading``); drafted from an order history (``draft/``,
  ``make contract``); the compatibility of two models' contracts (``compat``); request bodies
  derived from a contract (``bodies``, ``invalid_bodies``, ``golden_orders``);
- ``served_contract``: the tools' client of a service's ``GET /contract`` and of a stored
  model's contract and entity ids (the one module here that speaks HTTP, never imported by
  the server; above ``contract`` and ``store``, which it reads);
- ``features``: the one way model inputs are built from a contract (training and serving);
- ``model``: ``DeliveryTimeModel``, point estimate + conformalised 90 % interval
  (``intervals``); ``compiled_runtime`` evaluates the same trees as a TL2cgen-compiled library
  built at registration (``compiled_build``), ``treelite_runtime`` through Treelite GTIL (small batches), and
  ``runtime_selection`` picks one (``loadtest/runtime_bench.py`` times them all);
- ``drift_stats``: reference distributions stored with the model, and the PSI;
- ``order_paths``: which files an order history path names (the draft and training read them);
- ``training/``: synthetic order history, time split, fitting, model card, registration;
- ``store/``: the verified artifact in BentoML's model store, and its stage labels;
- ``promotion/``: the gate that compares a candidate with production (on the holdout and on
  live shadow evidence, ``live_comparison``), promote and roll back;
- ``settings``: which model to serve and how to evaluate it.

Nothing here knows about HTTP but ``served_contract``; the serving process imports
``contract`` (spec, loading, compat), ``features``, ``model``, the runtimes, ``drift_stats``,
``cohorts``, ``store`` and ``settings``, never ``training``, ``promotion`` or the draft.
"""
