"""Greedy decoding speed of SmolLM2-135M, minihybrid vs transformers, measured side by side in one run.

    python benchmarks/bench_decode.py --n-new 64 --repeats 3 [--threads 1]

Ends with the target line: minihybrid's tokens/s at least transformers' (ratio >= 1.0).
"""

from __future__ import annotations

import argparse

from minihybrid.decode_speed import DEFAULT_PROMPT, compare_decode_speed
from minihybrid.timing import target_line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gguf", default=None, help="path of the .gguf file (default: download SmolLM2)")
    args = parser.parse_args(argv)
    r = compare_decode_speed(args.n_new, args.prompt, args.repeats, args.gguf, args.threads)
    print(f"SmolLM2-135M float32, greedy, KV cache: prompt {r['prompt_tokens']} tokens + {r['n_new']} new, "
          f"{r['threads']} threads, median of {r['repeats']} ({r['torch']}, {r['machine']})")
    print(f"  minihybrid    {r['minihybrid_tok_s']:7.1f} tokens/s  ({r['minihybrid_s']:.3f} s, "
          f"load {r['load_minihybrid_s']:.1f} s)")
    print(f"  transformers  {r['transformers_tok_s']:7.1f} tokens/s  ({r['transformers_s']:.3f} s, "
          f"load {r['load_transformers_s']:.1f} s)")
    print(f"  ratio minihybrid/transformers = {r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f} "
          f"over the repeats), generated ids identical: {r['tokens_match']}")
    print(target_line("decode tokens/s minihybrid/transformers", r["ratio"], ">=", 1.0))


if __name__ == "__main__":
    main()
