"""Command line: python -m minihybrid {reproduce, train, generate, grade, doctor, workshop}.

`train` also runs data-parallel under torchrun (torchrun --nproc_per_node=2 -m minihybrid train ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path


def cmd_reproduce(args) -> None:
    if args.fast:
        os.environ["MINIHYBRID_FAST"] = "1"
    if args.retrain:
        os.environ["MINIHYBRID_RETRAIN"] = "1"
    if args.device:
        os.environ["MINIHYBRID_DEVICE"] = args.device
    from minihybrid.reproduce.report import run_all
    from minihybrid.runtime import device, fast_mode

    device()  # a device this machine lacks fails now, not after the first reproduction

    out = args.out or ("build/report-fast" if fast_mode() else "results")  # fast runs stay out of results/
    run_all(Path(out), only=args.only, seed=args.seed)


def cmd_train(args) -> None:
    import torch

    from minihybrid import distributed
    from minihybrid.config import ModelConfig
    from minihybrid.data import byte_streams
    from minihybrid.model import HybridLM
    from minihybrid.runtime import check_device
    from minihybrid.train import TrainConfig, train

    device = check_device(args.device, "--device")
    sizes = {"pattern": args.pattern, "n_layers": args.layers, "d_model": args.d_model, "n_heads": args.heads}
    config = ModelConfig.from_name(args.preset, **{k: v for k, v in sizes.items() if v is not None})
    if config.max_seq_len < args.seq_len:
        config = dataclasses.replace(config, max_seq_len=args.seq_len)
    streams = byte_streams(args.corpus)
    torch.manual_seed(args.seed)  # the same initial weights in every run with this seed (and on every rank)
    model = HybridLM(config)
    cfg = TrainConfig(steps=args.steps, seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, checkpoint=args.checkpoint)
    try:
        history = train(model, streams["train"], streams["validation"], cfg, device=device)
    finally:
        distributed.destroy()  # under torchrun
    if distributed.is_main():  # under torchrun, once
        print(f"val loss {history.val_loss[-1]:.4f} nats/byte, {history.tokens_per_second:,.0f} train "
              "tokens/s")


def cmd_generate(args) -> None:
    import torch

    from minihybrid.generate import generate
    from minihybrid.pretrained import load_smollm2

    model, tok = load_smollm2()
    prompt = tok.chat_prompt(args.prompt) if args.chat else args.prompt
    ids = torch.tensor([tok.encode(prompt)])
    out = generate(model, ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                   eos_id=tok.eos_id, seed=args.seed)
    print(tok.decode(out.tokens[0, ids.shape[1]:].tolist(), skip_special_tokens=True))
    print(f"[{out.new_tokens} tokens, {out.tokens_per_second:.1f} tokens/s]", file=sys.stderr)


def cmd_doctor(args) -> None:
    from minihybrid import doctor

    sys.exit(doctor.main())


def cmd_workshop(args) -> None:
    from minihybrid import doctor, workshop

    workshop.build({"both": workshop.MODES, "none": ()}.get(args.checkpoints, (args.checkpoints,)))
    sys.exit(doctor.main())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minihybrid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reproduce", help="run the registered reproductions and write results/REPORT.md")
    p.add_argument("--fast", action="store_true", help="tiny configurations (minutes, for smoke tests)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these reproductions")
    p.add_argument("--out", default=None,
                   help="output folder (default: results, or build/report-fast with --fast)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrain", action="store_true",
                   help="train again instead of reusing cached checkpoints (same as MINIHYBRID_RETRAIN=1)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="where models are trained (default: MINIHYBRID_DEVICE, else cpu); trained models "
                        "come back on the CPU, where the Numba kernels and the timings run as before")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("train", help="train a byte-level HybridLM on a corpus (data-parallel under torchrun: "
                                     "torchrun --nproc_per_node=2 -m minihybrid train ...)")
    p.add_argument("--corpus", choices=["shakespeare", "python"], default="shakespeare")
    p.add_argument("--preset", default="tiny", help="named model configuration (ModelConfig.from_name)")
    p.add_argument("--pattern", default=None, help='layer pattern, e.g. "AAAA", "ASAS" or "1:3"')
    p.add_argument("--layers", type=int, default=None, help="number of blocks (for ratio patterns)")
    p.add_argument("--d-model", type=int, default=None, help="model width (default: the preset's)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (default: the preset's)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="safetensors file to save to and resume from")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where to train (under torchrun with cuda, rank r uses GPU LOCAL_RANK)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="generate text with SmolLM2-135M-Instruct")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    p.set_defaults(func=cmd_generate)

    sub.add_parser("grade", help="grade the exercises: points per exercise (grade --help for options)")

    p = sub.add_parser("doctor", help="check this machine for the course: OK / WARN / FAIL lines with fixes")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("workshop", help="pre-build the downloads and the notebooks' checkpoints, then doctor")
    p.add_argument("--checkpoints", choices=["both", "fast", "full", "none"], default="both",
                   help="which modes' checkpoints to build (none: the downloads only)")
    p.set_defaults(func=cmd_workshop)

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grade"]:  # its options belong to minihybrid.grading
        from minihybrid import grading

        sys.exit(grading.main(argv[1:]))
    args = parser.parse_args(argv)
    from minihybrid.data import DownloadError

    try:
        args.func(args)
    except (ValueError, TypeError, DownloadError) as error:  # bad input or a missing download
        if os.environ.get("MINIHYBRID_TRACEBACK") == "1":
            raise
        print(f"error: {error}\n(MINIHYBRID_TRACEBACK=1 shows where it was raised)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
