"""Built-in executors, registered through the public hook."""

from ddbench.hookspecs import hookimpl
from ddbench.runner.executors import InProcessExecutor


@hookimpl
def register_executors(register):
    register(InProcessExecutor)
