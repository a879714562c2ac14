"""Benchmark: packed int4 / int8 weights through the Numba kernels vs PyTorch float32 and bfloat16.

1. Validates the Numba kernel against the reference (dequantize, then matmul) on SmolLM2's shapes.
2. Kernel level: per SmolLM2 matmul shape, one row (decode) and 4 rows (a speculative verify step), int4 g128
   (g64 where 576 inputs do not split into 128) and int8 per channel, timed against float32 ``x @ W.T``, with
   the achieved bytes/s beside the machine's measured copy bandwidth (kernels/quant_matmul/speed.py).
3. Model level (compress/speed.py): SmolLM2-135M greedy decode tokens/s with float32, bfloat16, int8 and int4
   weights, all timed interleaved; true weight memory; the share of a decode step outside the linear layers;
   the cost of one forward over k = 2..8 new tokens in single-token steps (module 04's verify step), whole
   and of its linear layers alone.
4. llama.cpp on the same GGUF file and prompt with 2 threads, when ``llama-cpp-python`` is installed: its
   decode tokens/s and its own V(k), the cost of a forward over k new tokens with its int8-dot kernels.

    python benchmarks/bench_quant_matmul.py              # about 3 minutes on 2 cores
    python benchmarks/bench_quant_matmul.py --repeats 5 --new-tokens 64
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from minihybrid.compress import QuantScheme, quantize_model, weight_bytes
from minihybrid.compress.speed import decode_rates, forward_costs, linear_costs, linear_share
from minihybrid.kernels.quant_matmul import quant_matmul
from minihybrid.kernels.quant_matmul.speed import SMOLLM2_SHAPES, copy_bandwidth, quantized_weight, time_gemv
from minihybrid.timing import compare, target_line

TARGET_VS_FP32, TARGET_VS_BF16, TARGET_MEMORY = 1.5, 1.0, 0.3
PROMPT = "Explain in a few sentences why the sky is blue."


def validate() -> None:
    for bits, group_size in ((4, 64), (4, 32), (8, None)):
        for k, n in SMOLLM2_SHAPES[:4]:
            group = k if group_size is None else group_size
            packed, scales, mins = quantized_weight(k, n, bits, group)
            x = torch.randn(3, k)
            got = quant_matmul(x, packed, scales, mins, bits=bits, group_size=group, backend="numba")
            want = quant_matmul(x, packed, scales, mins, bits=bits, group_size=group, backend="reference")
            torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)
    print("validated: Numba kernel == reference on SmolLM2's shapes, int4 g64 / g32, int8 per channel")


def kernels(repeats: int, bandwidth: float) -> None:
    print(f"\ncopy bandwidth of this machine: {bandwidth:.1f} GB/s (bytes read + written per second)")
    print(f"{'kernel':<14}{'rows':>5}{'K -> N':>14}{'fp32 ms':>10}{'quant ms':>10}{'speed-up':>20}"
          f"{'GB/s':>7}{'of copy':>9}")
    for bits, group_size in ((4, 128), (8, 1 << 20)):
        for rows in (1, 4):
            for r in time_gemv(bits=bits, group_size=group_size, rows=rows, repeats=repeats):
                name = f"int{bits} g{r['group_size']}"
                k, n = r["shape"]
                print(f"{name:<14}{rows:>5}{f'{k} -> {n}':>14}{r['fp32_ms']:>10.3f}{r['quant_ms']:>10.3f}"
                      f"{r['ratio'].format():>20}{r['quant_gbps']:>7.1f}{r['quant_gbps'] / bandwidth:>9.0%}")


def load_llama_cpp(**options):
    """llama.cpp's Llama on the same GGUF, 2 threads; None when ``llama-cpp-python`` is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from minihybrid.data.fetch import smollm2_gguf_path

    return Llama(model_path=str(smollm2_gguf_path()), n_threads=2, n_threads_batch=2, n_ctx=512,
                 verbose=False, **options)


def llama_cpp_rate(llm, prompt: str, n_new: int) -> float:
    """llama.cpp's greedy tokens/s (median of 3 runs), prefill included as in ours."""
    llm(prompt, max_tokens=4, temperature=0.0)  # warm-up
    rates = []
    for _ in range(3):
        llm.reset()  # no prompt-cache reuse between runs: prefill counts every time, as in ours
        start = time.perf_counter()
        out = llm(prompt, max_tokens=n_new, temperature=0.0)
        rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - start))
    return sorted(rates)[1]


def llama_cpp_forward_costs(llm, prompt: str, ks=range(1, 9), repeats: int = 7) -> dict:
    """llama.cpp's V(k), as ``forward_costs`` measures ours: k -> time of one forward over k new tokens after
    the prompt (logits at every position, as a verify step needs them) / time of a forward over 1. ``llm``
    keeps all logits (``logits_all=True``)."""
    tokens = llm.tokenize(prompt.encode())
    llm.reset()
    llm.eval(tokens)
    start = llm.n_tokens
    new = tokens[::-1][:max(ks)]

    def step(k):
        llm.n_tokens = start  # eval drops the cache past n_tokens: the rollback
        llm.eval(new[:k])

    timings = compare({k: (lambda k=k: step(k)) for k in ks}, repeats=repeats)
    return {k: timings[k].median / timings[1].median for k in ks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    from minihybrid.pretrained import load_smollm2

    validate()
    kernels(args.repeats + 4, copy_bandwidth())
    fp32, tokenizer = load_smollm2(max_seq_len=512)
    models = {"fp32": fp32.eval(), "bf16": copy.deepcopy(fp32).to(torch.bfloat16),
              "int8": quantize_model(copy.deepcopy(fp32), QuantScheme(8, None)),
              "int4 g128": quantize_model(copy.deepcopy(fp32), QuantScheme(4, 128))}
    chat = tokenizer.chat_prompt(PROMPT)
    prompt = torch.tensor([tokenizer.encode(chat)])
    rates = decode_rates(models, prompt, args.new_tokens, args.repeats)
    memory = {name: weight_bytes(m) for name, m in models.items()}
    print(f"\nSmolLM2-135M greedy decode, {prompt.shape[1]}-token prompt + {args.new_tokens} new tokens, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved runs")
    print(f"{'weights':<12}{'MB':>8}{'x fp32':>8}{'tok/s':>8}{'x fp32':>8}{'ms/token':>10}{'in linears':>12}"
          f"{'outside':>9}")
    for name, model in models.items():
        share = linear_share(model, prompt, min(args.new_tokens, 32))
        print(f"{name:<12}{memory[name] / 1e6:>8.1f}{memory[name] / memory['fp32']:>8.2f}"
              f"{rates[name]:>8.1f}{rates[name] / rates['fp32']:>8.2f}{1e3 * share['step_s']:>10.2f}"
              f"{1e3 * share['linear_s']:>12.2f}{share['other_share']:>9.0%}")
    print("\nforward over k new tokens / forward over 1 (the verify cost V(k) of speculative decoding):")
    for name in ("fp32", "int4 g128"):
        for part, costs in (("step", forward_costs(models[name], prompt, repeats=args.repeats + 4)),
                            ("linears", linear_costs(models[name], repeats=args.repeats + 4))):
            print(f"  {name:<10}{part:<9}" + "  ".join(f"k={k}: {c:.2f}" for k, c in costs.items()))
    llm = load_llama_cpp()
    if llm is None:
        print("\nllama.cpp: not installed (pip install -e '.[llama]', about 15 minutes to compile)")
    else:
        llama = llama_cpp_rate(llm, chat, args.new_tokens)
        print(f"\nllama.cpp, same GGUF (Q4_1) and prompt, 2 threads: {llama:.1f} tok/s; ours int4: "
              f"{rates['int4 g128']:.1f} ({rates['int4 g128'] / llama:.2f}x)")
        costs = llama_cpp_forward_costs(load_llama_cpp(logits_all=True), chat, repeats=args.repeats + 4)
        print("  llama.cpp step     " + "  ".join(f"k={k}: {c:.2f}" for k, c in costs.items()))
    print()
    int4 = rates["int4 g128"]
    print(target_line("int4 decode vs fp32 (speedup)", int4 / rates["fp32"], ">=", TARGET_VS_FP32))
    print(target_line("int4 decode vs bf16 (speedup)", int4 / rates["bf16"], ">=", TARGET_VS_BF16))
    print(target_line("int4 weight memory vs fp32 (ratio)", memory["int4 g128"] / memory["fp32"], "<=",
                      TARGET_MEMORY))


if __name__ == "__main__":
    main()
