"""The parts a served generation job is split into on Slurm (launch/slurm_generation.py writes the
scripts, synth/served.py does the parts): named in the environment of each part's `run
--in-allocation`. Engine-free: the Slurm lowering imports it."""

PHASE_ENV = "QWEN3_RECIPE_GENERATION"  # requests | serve | assemble
ATTEMPT_ENV = "QWEN3_RECIPE_SLURM_ATTEMPT"  # the submission's requests job id: its folder served/slurm-<id>
SLURM_PREFIX = "slurm-"
