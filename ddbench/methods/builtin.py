"""Built-in methods, registered through the public hook."""

from ddbench.hookspecs import hookimpl
from ddbench.methods.coreset import BUILTIN_METHODS
from ddbench.methods.dc import DCMethod, PCCMethod
from ddbench.methods.dm import DMMethod
from ddbench.methods.sadm import SADMMethod


@hookimpl
def register_methods(register):
    for method in (*BUILTIN_METHODS, DCMethod, PCCMethod, DMMethod, SADMMethod):
        register(method)
