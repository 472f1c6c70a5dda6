"""Session fixture for the real Slurm cluster of scripts/services.sh (filled in with the Slurm back-end)."""
