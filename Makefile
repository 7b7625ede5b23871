# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
.PHONY: setup demo demo-student test test-all bench bench-corpus bench-data schema clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/qwen3-recipe run recipes/tiny.yaml

demo-student: demo   # strong-to-weak distillation of the demo's final model into a smaller student
	.venv/bin/qwen3-recipe run recipes/tiny-student.yaml

# Two workers, a test file each (its module fixtures run once); `extended` tests (a capability a CI
# test also covers) run in test-all. --durations: where CI's time goes, in its log.
test: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not extended" --durations=25

test-all: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=25

bench: setup
	.venv/bin/python benchmarks/plan_startup.py --runs 15

bench-corpus: setup   # the real-text corpus (installs Debian's python3-doc when run as root)
	@bash scripts/bench-corpus.sh

bench-data: bench-corpus   # issue 18's data and loader rows (~26 min), then benchmarks/README.md's table
	@bash scripts/bench-data.sh

schema: setup
	.venv/bin/qwen3-recipe schema -o recipes/recipe.schema.json

clean:
	rm -rf runs .pytest_cache
