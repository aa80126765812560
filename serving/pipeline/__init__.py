"""The request path of one worker: ``prediction_pipeline`` runs it, with the online
``feature_store``, the adaptive ``batching`` in front of the model and the ``prediction_log``
that delayed labels join."""
