"""2-process DDP through torchrun (gloo, CPU) on the tiny config: it completes, the
ranks see disjoint parts of the training set, and only rank 0 writes checkpoints."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from helpers import REPO, env, make_image_folder

from vggkit.safe_load import torch_load

RECORDER = textwrap.dedent("""
    import os, sys
    from mmengine.dist import get_rank
    from mmengine.hooks import Hook
    from vggkit.hookspecs import hookimpl
    from vggkit.plugins import PluginInfo, load_plugins
    from vggkit.engine import train
    from vggkit.commands.train import parse_args

    class RecordSamples(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            with open(os.path.join(runner.work_dir, f'seen_rank{get_rank()}.txt'), 'a') as f:
                for sample in data_batch['data_samples']:
                    f.write(f'{runner.epoch} {sample.img_path}\\n')
        def before_save_checkpoint(self, runner, checkpoint):
            open(os.path.join(runner.work_dir, f'saved_by_rank{get_rank()}'), 'a').close()

    class Plugin:
        @hookimpl
        def vggkit_register_hooks(self, register):
            register(RecordSamples)

    load_plugins().add(Plugin(), PluginInfo('recorder'))
    cfg = train.load_config(parse_args(sys.argv[1:]))
    cfg.custom_hooks.append(dict(type='RecordSamples'))
    train.build_runner(cfg).train()
""")


def test_two_process_gloo_ddp(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=6)  # 18 images
    work = tmp_path / "work"
    script = tmp_path / "record.py"
    script.write_text(RECORDER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(29500 + os.getpid() % 1000), str(script),
           str(REPO / "configs" / "tiny" / "vgg_a_tiny.py"), "--data-root", str(data),
           "--work-dir", str(work), "--launcher", "pytorch", "--seed", "3",
           "--cfg-options", "total_batch_size=6", "train_cfg.max_epochs=2"]
    run = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    seen = {}
    for rank in (0, 1):
        lines = (work / f"seen_rank{rank}.txt").read_text().split("\n")
        seen[rank] = [tuple(line.split(" ", 1)) for line in lines if line]
    all_images = {str(p) for p in data.rglob("*.jpg")}
    for epoch in ("0", "1"):
        r0 = [p for e, p in seen[0] if e == epoch]
        r1 = [p for e, p in seen[1] if e == epoch]
        # batch 6 in total = 3 per process; 18 images -> 3 iterations x 3 per rank
        assert len(r0) == len(r1) == 9
        assert not set(r0) & set(r1), "ranks must see disjoint samples"
        assert set(r0) | set(r1) == all_images
    assert (work / "saved_by_rank0").exists() and not (work / "saved_by_rank1").exists()
    ckpt = torch_load(str(work / "epoch_2.pth"))
    assert ckpt["meta"]["iter"] == 6 and "vgg.head.fc8.weight" in ckpt["state_dict"]
