import sys

from qwen3_recipe.cli import main

sys.exit(main())
