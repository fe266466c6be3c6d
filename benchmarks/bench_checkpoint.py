"""Cost of the state-dict content hash on a VGG-16 checkpoint (issue 14).

Loading one VGG-16 (configuration D, 1000 classes) checkpoint with the hash
check (``safe_load.load_verified``, its per-process memo cleared) and without
(``safe_load.torch_load``), and the hash alone, in ``--rounds`` paired rounds
in rotated order after a warm-up; the figure is the median of the per-round
ratio load-with-check time ÷ load-without time, with min-max.

    python benchmarks/bench_checkpoint.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MIN_ROUNDS, command, fmt_ratio, headline, machine_header,  # noqa: E402
                    paired_rounds, write_fragment)

import vggkit.safe_load as ckpt  # noqa: E402
from vggkit.factory import build_vgg  # noqa: E402
from vggkit.models import save_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=MIN_ROUNDS, help="paired timed rounds")
    args = parser.parse_args(argv)
    header = machine_header()
    torch.manual_seed(0)
    sd = build_vgg("D", num_classes=1000, init="kaiming").state_dict()
    mb = sum(t.numel() * t.element_size() for t in sd.values()) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16.pth")
        save_checkpoint(path, sd, {"arch": "D"})

        def verified(_r) -> None:
            ckpt._VERIFIED.clear()  # noqa: SLF001 - measure the check, not its per-process memo
            ckpt.load_verified(path)

        checked, plain = "load with hash check", "torch_load (no check)"
        rounds = paired_rounds({"hash only": lambda _r: ckpt.state_dict_sha256(sd),
                                plain: lambda _r: ckpt.torch_load(path), checked: verified},
                               args.rounds)
    med = rounds.median()
    cost = rounds.ratios(plain)[checked]
    lines = ["## Checkpoint: the content hash", "", header, "",
             f"VGG-16 state dict, {mb:.0f} MB, {len(sd)} tensors; {args.rounds} paired rounds "
             "in rotated order after a warm-up.", "",
             "| operation | median seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in med.items()]
    lines += ["", f"Load with the check ÷ load without (same round): **{fmt_ratio(cost)}**.", "",
              f"Command: `{command(argv)}`"]
    heads = [headline("checkpoint load: with hash check ÷ without", "safe_load.load_verified",
                      cost, "× time (the check's cost)")]
    write_fragment("checkpoint", "\n".join(lines), {"headlines": heads, "median_s": med,
                                                    "mb": mb, "times_s": rounds.times})
    return 0


if __name__ == "__main__":
    sys.exit(main())
