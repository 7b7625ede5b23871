import sys

from qwen3_recipe.cli import main

if __name__ == "__main__":  # spawned workers re-import __main__
    sys.exit(main())
