"""Launching compiled jobs on clusters (Slurm today)."""
