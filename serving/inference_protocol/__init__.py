"""The Open Inference Protocol (v2, "KServe v2") as pure functions: no HTTP framework here.

``datatypes`` maps the protocol's tensor datatypes to numpy and reads/writes the binary tensor
data extension; ``inputs`` derives one input per request field from the request model's JSON
schema (so the served contract decides the protocol's inputs); ``requests`` decodes an infer
request straight into columns and validates them with numpy; ``responses`` encodes the answer;
``metadata`` builds the server and model metadata documents. The HTTP routes that use them
live in ``serving.server.inference_routes``; docs/inference-protocol.md describes the wire.
"""

from serving.inference_protocol.errors import InferenceRequestError

__all__ = ["InferenceRequestError"]
