"""Built-in evaluation protocols, registered through the public hook."""

from ddbench.evaluation.protocols import BUILTIN_PROTOCOLS
from ddbench.evaluation.segmentation import DD3DSegProtocol
from ddbench.hookspecs import hookimpl


@hookimpl
def register_protocols(register):
    for protocol in (*BUILTIN_PROTOCOLS, DD3DSegProtocol):
        register(protocol)
