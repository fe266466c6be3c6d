"""Cost of the state-dict content hash on a VGG-16 checkpoint (issue 14).

Loads of one VGG-16 (configuration D, 1000 classes) checkpoint with and without
the hash check, alternating, medians of 5 rounds; and the hash alone.

    python benchmarks/bench_checkpoint.py
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, medians, time_alternating, write_fragment  # noqa: E402

import vggkit.safe_load as ckpt  # noqa: E402
from vggkit.models import build_vgg, save_checkpoint  # noqa: E402


def main() -> int:
    torch.manual_seed(0)
    sd = build_vgg("D", num_classes=1000, init="kaiming").state_dict()
    mb = sum(t.numel() * t.element_size() for t in sd.values()) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16.pth")
        save_checkpoint(path, sd, {"arch": "D"})

        def verified() -> None:
            ckpt._VERIFIED.clear()  # noqa: SLF001 - measure the check, not its per-process memo
            ckpt.load_verified(path)

        times = time_alternating({"hash only": lambda: ckpt.state_dict_sha256(sd),
                                  "torch_load (no check)": lambda: ckpt.torch_load(path),
                                  "load with hash check": verified}, repeats=5)
    med = medians(times)
    ratios = [v / p for v, p in zip(times["load with hash check"], times["torch_load (no check)"])]
    lines = ["## checkpoint: the content hash", "",
             f"`python benchmarks/bench_checkpoint.py` — VGG-16 state dict, {mb:.0f} MB, "
             f"{len(sd)} tensors; medians of 5 alternating rounds. Machine: {machine_line()}.", "",
             "| operation | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in med.items()]
    lines += ["", f"Load with the check / load without: median paired ratio "
              f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}–{max(ratios):.2f})."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_fragment("checkpoint", text, {"median_s": med, "mb": mb, "paired_ratio": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
