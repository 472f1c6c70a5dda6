"""Runtime of a job on a pool of hardware, and every candidate (site, pool) of a network with its cost."""
