import sys

from qwen3_recipe.cli import main

if __name__ == "__main__":  # engines (vLLM, datatrove) spawn workers that re-import __main__
    sys.exit(main())
