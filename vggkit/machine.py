"""The machine a figure was measured on: CPU model, cores, the ISA flags that matter for
conv speed, library versions. Every benchmark and report records it with its figures."""
from __future__ import annotations

import os
import platform


def machine_info() -> dict:
    """CPU model, cores, ISA flags that matter for conv speed, library versions."""
    import torch
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version()}


def machine_line() -> str:
    """One line of :func:`machine_info` for a report's header."""
    m = machine_info()
    return (f"{m['cpu']}, {m['cores']} cores ({', '.join(m['isa']) or 'no AVX2'}), "
            f"torch {m['torch']}, {m['threads']} threads, Python {m['python']}")
