"""Built-in table presets, registered through the public hook."""

from ddbench.hookspecs import hookimpl
from ddbench.presets.definitions import BUILTIN_PRESETS


@hookimpl
def register_presets(register):
    for preset in BUILTIN_PRESETS:
        register(preset)
