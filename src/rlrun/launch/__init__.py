"""How runs are launched beyond one process: SLURM jobs (`cluster`: requeue, tasks as ranks)
and the Hydra callbacks of a sweep (`callbacks`: the closing summary, its exit code)."""
