"""Where compiled jobs run: the executor of the data pipelines (executors.py: local, Ray, or Slurm
array jobs, slurm_data.py) and Slurm submission of the other jobs (slurm.py)."""
