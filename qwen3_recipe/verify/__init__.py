"""Verifiers of generated answers (math, code, exact, regex, multiple choice, format, judge), answer
extraction and majority voting. `build_verifier({"type": "math"}).verify(response, gold)`."""

from qwen3_recipe.verify import ifeval, judge  # noqa: E402,F401,I001 (register "ifeval" and "judge")
from qwen3_recipe.verify.answers import extract_code, final_answer, majority
from qwen3_recipe.verify.sandbox import RunResult, network_mechanism, run_python
from qwen3_recipe.verify.verifiers import REGISTRY, Verdict, Verifier, build_verifier, register

__all__ = ["REGISTRY", "RunResult", "Verdict", "Verifier", "build_verifier", "extract_code",
           "final_answer", "majority", "network_mechanism", "register", "run_python"]
