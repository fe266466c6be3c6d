"""'auto' under a process group: rank 0 probes, every rank takes its choice; two real
processes joined with gloo on the CPU, as ``--launcher pytorch`` joins them."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

#: each rank runs this; on rank 0 jit is slow, on rank 1 eager is: a rank that probed on its
#: own would pick the other one, so the choice says who decided
RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import torch
    from vggkit.inference import autotune, backends
    from vggkit.inference.distributed import join_process_group
    from vggkit.inference.runners import compile_for_inference
    from vggkit.factory import build_vgg

    rank, out = int(os.environ["RANK"]), sys.argv[1]
    backends.onnxruntime_available = autotune.onnxruntime_available = lambda: False
    join_process_group("cpu")
    torch.manual_seed(0)
    net = build_vgg("A", num_classes=5, width_mult=1 / 16, fc_width=32, input_size=32,
                    init="glorot").eval()
    slow = "jit fp32" if rank == 0 else "eager fp32"
    built, real = [], autotune.build_runner

    def build(model, output, relu, backend, precision, device, example):
        if output == "fc7":  # the second choice below: rank 0 fails to probe
            raise RuntimeError("probe failed on rank 0")
        built.append(f"{backend} {precision}")
        run = real(model, output, relu, backend, precision, device, example)
        return lambda x: (time.sleep(0.2) if f"{backend} {precision}" == slow else None,
                          run(x))[1]

    autotune.build_runner = build
    cache = os.path.join(out, f"cache{rank}.json")
    backends.compiler_available = lambda device: False
    choice = autotune.choose("auto", "fp32", "cpu", models=[net], cache=cache)
    run = compile_for_inference(net, "logits", choice[0], precision=choice[1])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        agrees = torch.allclose(run(x), net(x), atol=1e-4)
    try:
        autotune.choose("auto", "fp32", "cpu", models=[net], output="fc7", cache=cache)
        error = None
    except RuntimeError as e:
        error = str(e)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"choice": list(choice), "built": built, "agrees": agrees, "error": error}, f)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rank0_probes_and_every_rank_takes_its_choice(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               OMP_NUM_THREADS="1", VGGKIT_AUTOTUNE="on")
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    errs = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["choice"] == rank1["choice"] == ["eager", "fp32"]  # rank 0's fastest
    assert sorted(rank0["built"]) == ["eager fp32", "jit fp32"] and rank1["built"] == []
    assert rank0["agrees"] and rank1["agrees"]
    # rank 0 alone wrote its cache and said what it chose
    assert (tmp_path / "cache0.json").exists() and not (tmp_path / "cache1.json").exists()
    assert "vggkit auto: eager fp32" in errs[0] and "vggkit auto" not in errs[1]
    # rank 0's failure reaches rank 1 instead of leaving it waiting
    assert rank0["error"] == rank1["error"] == "probe failed on rank 0"
