"""The offline commands an operator runs against the model store and the prediction log.

``export_labels`` (``make export-labels``: the labelled predictions as a training file, with
``label_file`` and ``model_contracts``), ``compare_live`` (``make compare``: champion vs
challenger on live requests) and ``promotion`` (``make promote``/``rollback``/``models``).
They read the log through ``prediction_log``'s read interface, whatever its backend, and never
import ``serving``: the server's image does not carry them (they need pyarrow).
"""
