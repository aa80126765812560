"""The server and model metadata documents, and the model name/version a route may name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.inference_protocol.inputs import InputSpec
from serving.inference_protocol.responses import OUTPUTS

EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions served (Triton's names)."""
TENSOR_SHAPE = [-1]
"""Every input and output: one element per order."""


class UnknownModel(LookupError):
    """A route named a model or version this server does not serve (404)."""


@dataclass(frozen=True)
class ServedModel:
    """The one model this server serves over the protocol: the model-store tag's name and
    version, and its inputs (:func:`serving.inference_protocol.inputs.input_specs`)."""

    name: str
    version: str
    platform: str
    inputs: Sequence[InputSpec]

    @classmethod
    def of_tag(cls, tag: str, platform: str, inputs: Sequence[InputSpec]) -> ServedModel:
        """The model of a ``name:version`` model-store tag."""
        name, _, version = tag.partition(":")
        return cls(name, version, platform, tuple(inputs))

    def check(self, name: str, version: str | None) -> None:
        """Raise :class:`UnknownModel` unless ``name`` (and ``version``, if given) is this
        model's."""
        if name != self.name or (version is not None and version != self.version):
            asked = name if version is None else f"{name} version {version}"
            raise UnknownModel(
                f"model {asked[:160]!r} is not served here; this server serves "
                f"{self.name!r} version {self.version!r}"
            )

    def metadata(self) -> dict[str, Any]:
        """The model metadata document: one input per request field (its rules as the
        input's ``parameters``), and the outputs."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [
                {
                    "name": spec.name,
                    "datatype": spec.datatype,
                    "shape": TENSOR_SHAPE,
                    "parameters": spec.rules(),
                }
                for spec in self.inputs
            ],
            "outputs": [
                {"name": out.name, "datatype": out.datatype, "shape": TENSOR_SHAPE}
                for out in OUTPUTS
            ],
        }


def server_metadata(name: str, version: str) -> dict[str, Any]:
    """The server metadata document."""
    return {"name": name, "version": version, "extensions": list(EXTENSIONS)}
