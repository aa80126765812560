"""The trees compiled to native code with TL2cgen: the fastest evaluator for every batch size.

TL2cgen turns the Treelite form of the three regressors into C, and gcc into a shared library
(quantized thresholds, ``-O1``). On this model it is ~4x faster per row than sklearn on
1000-row batches and >10x faster than Treelite's GTIL on single rows (``loadtest/runtime_bench.py``).

When it is built: at registration (``models.compiled_build.build_library``, called by
``models.store.artifact.register_model``), into the model's own directory in the BentoML model
store, so ``bentoml build`` packs it into the bento and the image with the model, and the
serving image needs no C compiler. Its sha256 and build facts are recorded in the model's
metadata (``compiled_library``); ``load_artifact`` refuses a model whose recorded library is
missing or altered, and :class:`CompiledRuntime` refuses one that does not load or does not
reproduce sklearn's outputs on a probe set. A model registered where no C compiler was found
has no library, and the service falls back to Treelite GTIL (``models.runtime_selection``).

One compiled model holds the three regressors as three targets (Treelite multi-target), so a
call evaluates all their trees in one pass (230 with the default training: 150 + 40 + 40). Its
base scores are zero: the TL2cgen 1.0 compiler (which embeds Treelite 4.1) adds target 0's base
score to every target, so the per-target base scores are recorded in the metadata and added
here instead.

Here: loading the library, checking it against sklearn, and calling it through TL2cgen's C API;
building it is ``models.compiled_build``.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from models.model import DeliveryTimeModel

LIBRARY_FILE = "compiled/delivery_eta_trees.so"
"""Where the library lives, relative to the model's directory in the store."""
METADATA_KEY = "compiled_library"
"""Model-metadata key of the library's record (file, sha256, base scores, build facts)."""
FORMAT = "tl2cgen-multitarget-v1"
"""What this code expects the library to be: 3 targets (point, lower, upper), raw margins
without base scores, float64 thresholds and leaves. A library of another format is refused."""
PARITY_ATOL = 1e-6
"""Largest allowed difference (minutes) from sklearn on the probe sets."""
STARTUP_PROBE_ROWS = 512


class CompiledLibraryError(RuntimeError):
    """The compiled library cannot be built, loaded, or does not reproduce the model."""


def regressors(model: DeliveryTimeModel) -> tuple[Any, Any, Any]:
    return (model.point_model, model.lower_model, model.upper_model)


def treelite_models(model: DeliveryTimeModel) -> list[Any]:
    import treelite

    return [treelite.sklearn.import_model(regressor) for regressor in regressors(model)]


def probe_rows(model: DeliveryTimeModel, rows: int, seed: int = 0) -> np.ndarray:
    """Rows that exercise every split: each number takes its split thresholds, the next
    doubles either side of them, and extremes (0, negatives, 1e300, the largest doubles); each
    category takes every code its contract allows (``0..levels-1``), and nothing else.

    Exactly at a threshold is where a compiled ``<=`` that rounded its constant, or a quantizer
    off by one bin, would send a row down the other branch. A category's splits are lists of
    codes, not thresholds; a code outside ``0..levels-1`` never reaches the model (the API
    and the training check refuse it), and sklearn and Treelite legitimately differ on one.
    """
    rng = np.random.default_rng(seed)
    levels = model.category_levels or (0,) * len(model.feature_names)
    thresholds: list[set[float]] = [set() for _ in model.feature_names]
    for part in treelite_models(model):
        for tree_id in range(part.num_tree):
            tree = part.get_tree_accessor(tree_id)
            inner = tree.get_field("cleft") >= 0
            for feature, value in zip(
                tree.get_field("split_index")[inner],
                tree.get_field("threshold")[inner],
                strict=True,
            ):
                thresholds[int(feature)].add(float(value))
    extremes = [0.0, -0.0, -1.0, 1e-300, 1e300, -1e300, np.finfo(np.float64).max]
    columns = []
    for values, codes in zip(thresholds, levels, strict=True):
        if codes:
            columns.append(rng.integers(0, codes, size=rows).astype(np.float64))
            continue
        at = np.array(sorted(values), dtype=np.float64)
        candidates = np.concatenate(
            [at, np.nextafter(at, np.inf), np.nextafter(at, -np.inf), np.array(extremes)]
        )
        columns.append(rng.choice(candidates, size=rows))
    return np.column_stack(columns)


def platform_mismatch(record: dict[str, Any]) -> str | None:
    """Why a library recorded as ``record`` cannot run on this machine, or None if it can."""
    built_on = record.get("platform", {})
    here = platform_facts()
    for key in ("system", "machine"):
        if built_on.get(key) != here[key]:
            return f"built for {built_on.get(key)!r}, this machine is {here[key]!r}"
    return None


class CompiledRuntime:
    """``predict_rows`` of a :class:`DeliveryTimeModel` through its TL2cgen-compiled library.

    Loading checks the library's format and shape, then compares its outputs with sklearn's on
    ``probe_rows`` threshold-probe rows; any failure raises :class:`CompiledLibraryError`.
    Calls are serialised by a lock (a TL2cgen predictor serves one call at a time); the
    service calls it from one model thread per worker anyway.
    """

    def __init__(
        self,
        model: DeliveryTimeModel,
        library: Path,
        record: dict[str, Any],
        *,
        probe_rows: int = STARTUP_PROBE_ROWS,
        nthread: int = 1,
    ) -> None:
        self.model = model
        self.library = library
        if record.get("format") != FORMAT:
            raise CompiledLibraryError(
                f"{library.name} has format {record.get('format')!r}, this code reads {FORMAT!r}"
            )
        self._shift = np.array(record["base_scores"], dtype=np.float64)
        self._features = len(model.feature_names)
        self._lock = threading.Lock()
        try:
            import tl2cgen
            from tl2cgen.libloader import _LIB

            # nthread=1 by default: one model thread per worker, OpenMP capped at 1 there too.
            self._predictor = tl2cgen.Predictor(str(library), nthread=nthread)
        except Exception as exc:  # TL2cgenError (dlopen, missing symbols), OSError
            reason = " ".join(str(exc).split())  # TL2cgen's messages span lines
            raise CompiledLibraryError(f"cannot load {library}: {reason}") from exc
        shape = (
            self._predictor.num_feature,
            self._predictor.num_target,
            list(self._predictor.num_class),
            self._predictor.threshold_type,
            self._predictor.leaf_output_type,
        )
        expected = (self._features, 3, [1, 1, 1], "float64", "float64")
        if shape != expected:
            raise CompiledLibraryError(f"{library.name} is {shape}, expected {expected}")
        if self._predictor.handle is None:
            raise CompiledLibraryError(f"cannot load {library}: no predictor handle")
        self._handle: ctypes.c_void_p = self._predictor.handle
        self._api = _CApi(_LIB._name)
        self._missing = np.array([np.nan], dtype=np.float64)
        self._check_parity(probe_rows)

    def predict_rows(self, features: np.ndarray) -> np.ndarray:
        """Same contract as :meth:`DeliveryTimeModel.predict_rows`."""
        features = np.ascontiguousarray(features, dtype=np.float64)
        rows = self.model.unfitted_as_missing(features)
        raw = self.raw_outputs(rows)
        misread = _misread_rows(rows)
        if misread.any():
            raw[misread] = _sklearn_raw(self.model, rows[misread])
        return self.model.combine_stacked(raw, features)

    def raw_outputs(self, rows: np.ndarray) -> np.ndarray:
        """``(n, 3)`` regressor outputs (base scores included) of C-contiguous float64 rows."""
        if rows.ndim != 2 or rows.shape[1] != self._features:
            raise ValueError(f"expected (n, {self._features}) rows, got {rows.shape}")
        n = rows.shape[0]
        # The library adds every tree's leaf to the output, so it must start at zero.
        out = np.zeros((n, 3), dtype=np.float64)
        if n:
            with self._lock:
                self._api.predict(self._handle, rows, n, self._missing, out)
        out += self._shift
        return out

    def _check_parity(self, rows: int) -> None:
        probe = probe_rows(self.model, rows, seed=rows)
        expected = self.model.predict_rows(probe)
        worst = float(np.max(np.abs(self.predict_rows(probe) - expected)))
        # The C-API path and TL2cgen's own Python API must agree (rows TL2cgen misreads apart).
        clean = np.ascontiguousarray(probe[~_misread_rows(probe)])
        public = self._predictor.predict(_dmatrix(clean), pred_margin=True).reshape(-1, 3)
        worst_api = float(np.max(np.abs(public + self._shift - self.raw_outputs(clean))))
        if not worst <= PARITY_ATOL or not worst_api <= PARITY_ATOL:
            raise CompiledLibraryError(
                f"{self.library.name} does not reproduce the model: max |difference| "
                f"{max(worst, worst_api):.3g} min on {rows} probe rows (allowed {PARITY_ATOL})"
            )


class _CApi:
    """The three TL2cgen C-API calls of a prediction, with typed arguments.

    ``tl2cgen.Predictor.predict`` costs ~40 us of Python per call (output-shape query, ctypes
    array views) on top of a ~6 us 1-row prediction; calling the documented C API directly
    keeps single-row batches cheap. Uses the library the tl2cgen package itself loaded.
    """

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        self._create = lib.TL2cgenDMatrixCreateFromMat
        self._create.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
        ]
        self._create.restype = ctypes.c_int
        self._predict = lib.TL2cgenPredictorPredictBatch
        self._predict.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        self._predict.restype = ctypes.c_int
        self._free = lib.TL2cgenDMatrixFree
        self._free.argtypes = [ctypes.c_void_p]
        self._free.restype = ctypes.c_int
        self._error = lib.TL2cgenGetLastError
        self._error.restype = ctypes.c_char_p

    def predict(
        self,
        predictor: ctypes.c_void_p,
        rows: np.ndarray,
        n: int,
        missing: np.ndarray,
        out: np.ndarray,
    ) -> None:
        matrix = ctypes.c_void_p()
        self._check(
            self._create(
                rows.ctypes.data, b"float64", n, rows.shape[1], missing.ctypes.data, matrix
            )
        )
        try:
            # verbose=0, pred_margin=1 (raw sums; the model has no link function anyway).
            self._check(self._predict(predictor, matrix, 0, 1, out.ctypes.data))
        finally:
            self._free(matrix)

    def _check(self, status: int) -> None:
        if status != 0:
            message = self._error()
            raise CompiledLibraryError(
                f"TL2cgen: {message.decode() if message else 'error ' + str(status)}"
            )


def _misread_rows(rows: np.ndarray) -> np.ndarray:
    """Rows TL2cgen would misread: its input union takes a double whose low 32 bits are all
    ones for "missing" (its int sentinel is -1), so the row would follow the missing-value
    branches. Rare in real data (about 1 value in 4e9; but e.g. the largest double below 0.5
    is one); :meth:`CompiledRuntime.predict_rows` has sklearn evaluate those rows instead."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    low_words = (
        rows.view(np.uint32)[:, 0::2]
        if sys.byteorder == "little"
        else rows.view(np.uint32)[:, 1::2]
    )
    return np.asarray((low_words == 0xFFFFFFFF).any(axis=1))


def _dmatrix(rows: np.ndarray) -> Any:
    import tl2cgen

    return tl2cgen.DMatrix(np.ascontiguousarray(rows, dtype=np.float64))


def _sklearn_raw(model: DeliveryTimeModel, rows: np.ndarray) -> np.ndarray:
    return np.column_stack([regressor.predict(rows) for regressor in regressors(model)])


def platform_facts() -> dict[str, str]:
    libc, libc_version = platform.libc_ver()
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "libc": f"{libc} {libc_version}".strip(),
    }
