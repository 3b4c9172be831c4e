"""The grid runner: experiment files, grid expansion, cells, executors and progress."""
