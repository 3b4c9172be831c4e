"""Built-in methods, registered through the public hook."""

from ddbench.hookspecs import hookimpl
from ddbench.methods.coreset import BUILTIN_METHODS


@hookimpl
def register_methods(register):
    for method in BUILTIN_METHODS:
        register(method)
