"""Built-in methods, registered through the public hook."""

from ddbench.hookspecs import hookimpl
from ddbench.methods.coreset import BUILTIN_METHODS
from ddbench.methods.dc import DCMethod, PCCMethod
from ddbench.methods.dd3d import DD3DMethod
from ddbench.methods.ddp3d import DDP3DMethod
from ddbench.methods.dm import DMMethod
from ddbench.methods.sadm import SADMMethod


@hookimpl
def register_methods(register):
    for method in (*BUILTIN_METHODS, DCMethod, PCCMethod, DMMethod, SADMMethod, DD3DMethod, DDP3DMethod):
        register(method)
