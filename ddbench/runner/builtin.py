"""Built-in executors, registered through the public hook."""

from ddbench.hookspecs import hookimpl
from ddbench.runner.executors import InProcessExecutor
from ddbench.runner.pool import PoolExecutor
from ddbench.runner.ray_executor import RayExecutor
from ddbench.runner.slurm_executor import SlurmExecutor


@hookimpl
def register_executors(register):
    register(InProcessExecutor)
    register(PoolExecutor)
    register(RayExecutor)
    register(SlurmExecutor)
