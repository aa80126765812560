"""Test-only fault injection for servers a test starts with this folder first on PYTHONPATH.

Python imports ``sitecustomize`` in every process as it starts -- the serving process and each
worker BentoML spawns -- so the fault is in place before ``serving.startup`` binds
``select_runtime``. With ``TEST_FAULT_RAISING_MODEL_TAG`` set, the model of that tag loads and
verifies as usual but raises on every prediction: a challenger that fails at run time.
"""

import os

_RAISING_TAG = os.environ.get("TEST_FAULT_RAISING_MODEL_TAG")

if _RAISING_TAG:
    from typing import Any

    import numpy as np

    import models.runtime_selection as _runtime_selection

    _original = _runtime_selection.select_runtime

    class _Raising:
        def predict_rows(self, features: np.ndarray) -> np.ndarray:
            raise RuntimeError(f"injected fault: {_RAISING_TAG} raises on every call")

    def _select_runtime(artifact: Any, *args: Any, **kwargs: Any) -> Any:
        runtime = _original(artifact, *args, **kwargs)
        return _Raising() if artifact.tag == _RAISING_TAG else runtime

    _runtime_selection.select_runtime = _select_runtime
