"""Building a model's TL2cgen library at registration: the three regressors combined into one
multi-target Treelite model, compiled to C and by gcc into a shared library in the model's own
directory, and its record for the model's metadata -- refused unless it reproduces sklearn.

Where the library is loaded and called, and why it is built this way, is
``models.compiled_runtime``. Here also the C toolchain: whether gcc is on PATH, its version,
and the Treelite version notice TL2cgen's build prints on every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from models.compiled_runtime import (
    FORMAT,
    LIBRARY_FILE,
    CompiledLibraryError,
    CompiledRuntime,
    platform_facts,
    treelite_models,
)
from models.model import DeliveryTimeModel

logger = logging.getLogger(__name__)

COMPILER = "gcc"
COMPILER_OPTIONS = ("-O1",)
"""-O1 measured fastest (and compiles fastest): -O2/-O3 unroll the 2 MB of branches into more
code than the instruction cache holds (``python -m loadtest.runtime_bench --compile-variants``)."""
CODEGEN_PARAMS: dict[str, Any] = {"quantize": 1, "parallel_comp": 2}
"""quantize: thresholds become integer bin indices (one binary search per feature per row, then
integer compares): 2-3x faster here and exact. parallel_comp: two translation units, one per
core, so the build takes half the wall time."""
REGISTRATION_PROBE_ROWS = 4096

VERSION_NOTICE = (
    "originated from a newer Treelite version",
    "Currently running Treelite version",
    "The model checkpoint was generated from Treelite version",
)
"""The three lines the Treelite inside TL2cgen writes to stderr on every build (below)."""


@contextlib.contextmanager
def _without_treelite_version_notice() -> Iterator[None]:
    """Run the block with the process's stderr (fd 2) captured, then write it back without the
    lines of :data:`VERSION_NOTICE`.

    Why: ``tl2cgen.export_lib`` serialises the model with the installed Treelite (4.8, which
    the GTIL runtime needs: ``treelite>=4.4``) and reads it back with the Treelite 4.1 that
    TL2cgen 1.0 -- the newest -- has compiled in, whose C++ logger prints "The model you are
    loading originated from a newer Treelite version" straight to fd 2 on every training run,
    out of reach of Python's warnings and logging. The 4.x format is shared, and the build is
    checked against sklearn on a probe set right after (:class:`CompiledRuntime`), so a real
    incompatibility is refused, not hidden. Every other line is written back.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()  # Python's own writes of the block go to the capture too
                os.dup2(saved, 2)
                captured.seek(0)
                lines = captured.read().decode(errors="replace").splitlines(keepends=True)
                kept = "".join(line for line in lines if not any(n in line for n in VERSION_NOTICE))
                if kept:
                    sys.stderr.write(kept)
                    sys.stderr.flush()
    finally:
        os.close(saved)


def compiler_available() -> bool:
    """True when the C compiler TL2cgen is told to use is on PATH."""
    return shutil.which(COMPILER) is not None


def combined_treelite_model(model: DeliveryTimeModel) -> tuple[Any, list[float]]:
    """One Treelite model with the three regressors as targets 0, 1, 2, and their base scores.

    The returned model's base scores are zero (see the module docstring); the three real ones
    are returned alongside, to be added to the library's raw outputs.
    """
    import treelite

    parts = treelite_models(model)
    base_scores: list[float] = []
    for part in parts:
        header = part.get_header_accessor()
        if (
            header.get_field("postprocessor") != "identity"
            or int(header.get_field("num_target")[0]) != 1
        ):
            raise CompiledLibraryError(
                "only single-target regressors without a link function can be compiled"
            )
        base_scores.append(float(np.asarray(header.get_field("base_scores")).reshape(-1)[0]))
    combined = treelite.Model.concatenate(parts)
    header = combined.get_header_accessor()
    trees_per_target = [part.num_tree for part in parts]
    header.set_field("num_target", np.array([len(parts)], dtype=np.int32))
    header.set_field("num_class", np.ones(len(parts), dtype=np.int32))
    header.set_field(
        "target_id",
        np.repeat(np.arange(len(parts), dtype=np.int32), trees_per_target),
    )
    header.set_field("class_id", np.zeros(combined.num_tree, dtype=np.int32))
    header.set_field("base_scores", np.zeros(len(parts), dtype=np.float64))
    return combined, base_scores


def build_library(
    model: DeliveryTimeModel,
    model_dir: Path,
    *,
    library_file: str = LIBRARY_FILE,
    codegen_params: dict[str, Any] | None = None,
    compiler_options: tuple[str, ...] = COMPILER_OPTIONS,
) -> dict[str, Any] | None:
    """Compile ``model`` into ``model_dir / library_file``; the record for the metadata.

    ``codegen_params`` (default ``CODEGEN_PARAMS``) and ``compiler_options`` are for the
    benchmark's variants; registration uses the defaults.

    Returns None (and logs a warning) when no C compiler is installed: the model is still
    servable, through Treelite GTIL. Raises :class:`CompiledLibraryError` when the build fails
    or the library does not reproduce sklearn within ``PARITY_ATOL`` on a threshold probe set.
    """
    if not compiler_available():
        logger.warning(
            "no C compiler (%s) on PATH: registering without a compiled library; "
            "the service will evaluate this model with Treelite GTIL",
            COMPILER,
        )
        return None
    import tl2cgen
    import treelite

    params = dict(CODEGEN_PARAMS if codegen_params is None else codegen_params)
    combined, base_scores = combined_treelite_model(model)
    target = model_dir / library_file
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="delivery-eta-tl2cgen-") as build_dir:
        built = Path(build_dir) / target.name
        try:
            with _without_treelite_version_notice():
                tl2cgen.export_lib(
                    combined,
                    toolchain=COMPILER,
                    libpath=str(built),
                    params=params,
                    options=list(compiler_options),
                    nthread=2,
                )
        except Exception as exc:  # TL2cgenError, compiler failures: one clear reason
            raise CompiledLibraryError(f"TL2cgen build failed: {exc}") from exc
        shutil.copyfile(built, target)
    build_seconds = time.perf_counter() - started
    record: dict[str, Any] = {
        "file": library_file,
        "sha256": _sha256(target),
        "format": FORMAT,
        "base_scores": base_scores,
        "tl2cgen": tl2cgen.__version__,
        "treelite": treelite.__version__,
        "compiler": _compiler_version(),
        "compiler_options": list(compiler_options),
        "codegen_params": params,
        "platform": platform_facts(),
        "build_seconds": round(build_seconds, 1),
    }
    # Refuse to register a library that does not predict what the model predicts.
    CompiledRuntime(model, target, record, probe_rows=REGISTRATION_PROBE_ROWS)
    logger.info("compiled the trees with TL2cgen in %.1f s: %s", build_seconds, library_file)
    return record


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compiler_version() -> str:
    try:
        out = subprocess.run(
            [COMPILER, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"
