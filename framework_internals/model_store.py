"""Touch-points 4 and 5: BentoML's local model store -- relabelling a stored model (BentoML 1.4 has
no label-update call for it) and, for tests, pointing the store at another folder."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

# --------------------------------------------------------------------------- 4. model labels


def write_model_labels(tag: str, changes: Mapping[str, str]) -> dict[str, str]:
    """Update a stored model's labels and persist them in its ``model.yaml`` (atomically).

    Edits the loaded ``ModelInfo``'s label dict and writes the file the way
    ``bentoml.models.create`` does, via a temporary file + rename so that a concurrent reader (a
    starting server) never sees half a file. Returns the labels as re-read from disk.
    """
    import bentoml

    model = bentoml.models.get(tag)
    model.info.labels.update({key: str(value) for key, value in changes.items()})
    target = Path(model.path) / "model.yaml"
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, tmp_name = tempfile.mkstemp(prefix=".model.yaml.", dir=target.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; keep the file readable as before
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            model.info.dump(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return dict(bentoml.models.get(tag).info.labels)


# --------------------------------------------------------------------------- 5. model store


@contextlib.contextmanager
def use_model_store(folder: Path) -> Iterator[None]:
    """Within the block, BentoML's model store is ``folder`` (tests: a private store)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    with BentoMLContainer.model_store.patch(ModelStore(folder)):
        yield
