"""Run one benchmark module for two checkouts, alternately, in one run: before and after a change.

On a shared machine two benchmarks run an hour apart measure the neighbours as much as the code;
alternating (before, after, after, before, ...) lets their load fall on both alike. Each run is a
fresh interpreter that imports ``collector`` (and the module) from the checkout given, not from the
package this venv has installed in editable mode. The outputs are printed as they come, each headed
by its checkout; compare the ratios within the run.

Run: .venv/bin/python -m bench.checkouts --base ../latency-base --repeats 2 bench.ingest --messages 100000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
LAUNCH = """import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
code, module = sys.argv.pop(1), sys.argv.pop(1)
sys.path.insert(0, code)
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare with (before)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per checkout (at most 5)")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="one run at most this long")
    parser.add_argument("module", help="the benchmark module, e.g. bench.ingest")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="passed to the module")
    args = parser.parse_args()
    codes = {"before": args.base.resolve(), "after": HERE}
    for repeat in range(max(1, min(args.repeats, 5))):
        order = ["before", "after"] if repeat % 2 == 0 else ["after", "before"]
        for name in order:
            print(f"=== {name} ({codes[name]}), run {repeat + 1}", flush=True)
            subprocess.run(
                [sys.executable, "-c", LAUNCH, str(codes[name]), args.module, *args.arguments],
                cwd=codes[name],
                timeout=args.timeout_s,
                check=True,
            )


if __name__ == "__main__":
    main()
