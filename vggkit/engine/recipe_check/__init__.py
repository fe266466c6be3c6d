"""``vggkit recipe-check`` / ``tools/recipe_check.py``: the paper's Sect. 3.1 in miniature.

Trains small copies of the paper's nets (1/4 width, FC 512, 32-pixel crops) on any
image folder with train/ and val/ sub-folders (default: scikit-learn's digits,
written once, so that the check runs offline), with the paper's rules given a
fair chance at that scale, and checks its findings:

  (a) net A learns from random initialisation;
  (b) the deep net E from random initialisation learns more slowly or stalls,
      and initialising it from the trained A fixes that;
  (c) Glorot initialisation trains E without pre-training;
  (d) scale jittering at training time beats a fixed S, tested as Tables 3
      (one Q) and 4 (several Q) test it.

The rules (configs/recipe_check/vgg_paper_small.py says why for each): random
init N(0, σ_l²) with σ_l = 0.01·sqrt(full-size fan-in / fan-in) and zero biases
(init 'paper_scaled'), SGD at lr 0.01 per step, batch 64, momentum 0.9, weight
decay 5e-4, dropout 0.5, the training set's own mean subtracted in 0-255, PCA
lighting from the training set's own colour statistics, flips, S = 32 with
4-pixel padding (S = 48 and S in [32, 64] for (d)), lr divided by 10 at 70 %
and 90 % of the budget.

Every run gets the same number of epochs: --epochs, or what a short timing
probe of one training step of A and of E says fits --minutes on this machine.
Runs of (d) are trained with every --seeds (their comparison hinges on a few
points), the others with the first. Every run is a resumable training run:
rerunning the command after a kill continues where it stopped and reuses
finished runs (and the budget chosen at the first start).

Writes OUT/recipe_check.md (a table per finding, the verdicts with their
reasons, the command), OUT/recipe_check.png (the curves) and
OUT/recipe_check.json (every figure).
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Optional, Sequence

from vggkit.engine.recipe_check.runs import (BY_NAME, CONFIG, RUNS, Planned, final_checkpoint,
                                             instances, run_key, run_options, train_all)
from vggkit.errors import UserError

__all__ = ["check", "RUNS", "CONFIG"]


def digits_root() -> str:
    """The 10-class digits folder (``train/`` + ``val/``), written once beside the demo's."""
    from vggkit import paths
    from vggkit.demo import write_digits
    return write_digits(os.fspath(paths.cache_dir("digits10-v1")), source_classes=10)["source"]


def split_sizes(data_root: str) -> tuple[int, list[str]]:
    """Training images and the classes of an image folder with train/ and val/.

    Raises:
        UserError: the folder or one of its splits is missing or empty.
    """
    from vggkit.data.datasets import ImageFolder
    if not os.path.isdir(data_root):
        raise UserError(f"--data-root '{data_root}' is not a directory")
    missing = [s for s in ("train", "val") if not os.path.isdir(os.path.join(data_root, s))]
    if missing:
        raise UserError(f"--data-root '{data_root}' has no {missing[0]}/ sub-folder: the check "
                        "needs DIR/train/<class>/ and DIR/val/<class>/ images")
    sizes = {}
    for split in ("train", "val"):
        try:
            dataset = ImageFolder(os.path.join(data_root, split), lazy_init=True,
                                  serialize_data=False)
            dataset.full_init()
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            raise UserError(f"--data-root '{data_root}': {split}/ is not an image folder "
                            f"({exc})") from None
        sizes[split] = (len(dataset), [str(c) for c in dataset.metainfo["classes"]])
    if sizes["train"][1] != sizes["val"][1] or len(sizes["train"][1]) < 2:
        raise UserError(f"--data-root '{data_root}': train/ and val/ must hold the same classes, "
                        "at least 2")
    return sizes["train"][0], sizes["train"][1]


def choose_budget(work_dir: str, epochs: Optional[int], minutes: float, jobs: int,
                  probe: Callable[[], dict[str, Any]], command: str = "") -> dict[str, Any]:
    """The epochs of every run, recorded in WORK_DIR/budget.json with the command that set it.

    ``epochs`` if given; else the budget recorded at the first start (a resumed check keeps
    its runs' length); else the timing probe's (``probe()``). A resumed check without
    ``epochs`` whose record lacks the probe runs it for the record only.
    """
    from vggkit.fileio import atomic_write_json
    path = os.path.join(work_dir, "budget.json")
    budget: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path) as f:
            budget = json.load(f)
    if epochs:
        if budget.get("epochs") != epochs:
            budget.update(epochs=epochs, source="--epochs", set_by=command)
    elif "probe_epochs" not in budget:
        budget.update(probe(), minutes=minutes, jobs=jobs)
        if "epochs" not in budget:
            budget.update(epochs=budget["probe_epochs"], source="timing probe", set_by=command)
    atomic_write_json(path, budget)
    return budget


def check(*, data_root: Optional[str] = None, work_dir: str = "work_dirs/recipe_check",
          out: Optional[str] = None, minutes: float = 30.0, epochs: Optional[int] = None, jobs: int = 1,
          seeds: Sequence[int] = (0, 1), runs: Optional[Sequence[str]] = None,
          config: str = CONFIG, command: str = "") -> Optional[dict[str, Any]]:
    """Train what is missing, then test, judge and write the report.

    Returns the report's figures, or None while a run the report needs is untrained
    (``runs`` picked only some). Optional runs (A_S48) are reported when trained. The report
    goes to ``out``, by default the work dir.
    """
    from mmengine.config import Config

    from vggkit.engine.recipe_check.runs import (epochs_for_budget, probe_seconds_per_step,
                                                 training_stats)
    from vggkit.engine.recipe_check.report import REPORT_FILES
    from vggkit.fileio import claim_output
    start = time.time()
    out = out or work_dir
    for name in REPORT_FILES:  # refused before any training, not after half an hour of it
        try:
            claim_output(os.path.join(out, name))
        except FileExistsError as exc:
            raise UserError(f"recipe-check report (--out): {exc}") from None
    root = os.path.abspath(data_root or digits_root())
    n_train, classes = split_sizes(root)
    os.makedirs(work_dir, exist_ok=True)
    stats = training_stats(root, os.path.abspath(os.path.join(work_dir, "training_stats.json")))
    todo = instances(list(seeds), runs)
    steps_per_epoch = math.ceil(n_train / int(Config.fromfile(config).total_batch_size))

    def probe() -> dict[str, Any]:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        per_step = probe_seconds_per_step(config, root, stats, sorted({r.arch for r, _ in todo}),
                                          threads)
        chosen, steps = epochs_for_budget(per_step, [r.arch for r, _ in todo], steps_per_epoch,
                                          minutes, jobs)
        return {"probe_epochs": chosen, "probe_seconds_per_step": per_step,
                "probe_threads": threads, "probe_steps": steps}

    budget = choose_budget(work_dir, epochs, minutes, jobs, probe, command)
    n_epochs = int(budget["epochs"])
    plan = []
    sources = {(r.init_from, seeds[0]) for r in RUNS}
    # first what another run starts from, then the slow deep nets, then the rest
    for run, seed in sorted(todo, key=lambda rs: ((rs[0].name, rs[1]) not in sources,
                                                  rs[0].arch != "E")):
        key = run_key(run, seed)
        run_dir = os.path.abspath(os.path.join(work_dir, key))
        if not os.path.exists(final_checkpoint(run_dir, n_epochs)):
            after = run_key(BY_NAME[run.init_from], seed) if run.init_from else None
            plan.append(Planned(key, run_dir, seed, run_options(
                run, seed, n_epochs, stats, os.path.abspath(work_dir)), after))
    train_all(plan, config, root, jobs)
    trained = [(r, s) for r, s in instances(list(seeds)) if os.path.exists(final_checkpoint(
        os.path.join(work_dir, run_key(r, s)), n_epochs))]
    missing = [run_key(r, s) for r, s in instances(list(seeds)) if r.required and (r, s) not in trained]
    if missing:
        print(f"recipe-check: the report needs {', '.join(missing)} too: rerun without --runs")
        return None
    from vggkit.engine.recipe_check import report
    return report.write_report(work_dir=work_dir, out=out, data_root=root, classes=classes,
                               seeds=list(seeds), trained=trained, budget=budget,
                               steps_per_epoch=steps_per_epoch, n_train=n_train, command=command,
                               minutes=(time.time() - start) / 60)



