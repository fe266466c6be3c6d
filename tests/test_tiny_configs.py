"""The tiny configs' recipe for small photos (issue 24): pad-crop, the one-cycle lr and
momentum, BatchNorm; the paper's recipe kept in vgg_a_paper_tiny.py."""
from __future__ import annotations

import pytest
import torch

from helpers import REPO, make_image_folder


TINY = REPO / "configs" / "tiny" / "vgg_a_tiny.py"
BN_TINY = REPO / "configs" / "tiny" / "vgg_a_bn_tiny.py"
PAPER_TINY = REPO / "configs" / "tiny" / "vgg_a_paper_tiny.py"


def _config(path, *options):
    from vggkit.commands.train import parse_args
    from vggkit.engine.train import load_config
    return load_config(parse_args([str(path), *options]))


def _schedule(cfg, epochs: int, iters_per_epoch: int) -> tuple[list[float], list[float]]:
    """The lr and momentum at every iteration, built as mmengine's runner builds the schedulers."""
    from vggkit.registry import PARAM_SCHEDULERS
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                          lr=cfg.optim_wrapper.optimizer.lr,
                          momentum=cfg.optim_wrapper.optimizer.momentum)
    schedulers = []
    for spec in cfg.param_scheduler:
        spec = dict(spec)
        spec.setdefault("end", epochs)  # the runner's default: max_epochs
        cls = PARAM_SCHEDULERS.get(spec.pop("type"))
        spec.pop("convert_to_iter_based")
        schedulers.append(cls.build_iter_from_epoch(opt, epoch_length=iters_per_epoch, **spec))
    lrs, momenta = [], []
    for _ in range(epochs * iters_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        for s in schedulers:
            s.step()
    return lrs, momenta


@pytest.mark.parametrize("epochs", [1, 3, 10])
def test_tiny_one_cycle_warms_up_then_anneals_whatever_the_length(tmp_path, epochs):
    data = make_image_folder(tmp_path / "img", per_class=2)
    cfg = _config(TINY, "--data-root", str(data), "--work-dir", str(tmp_path / "w"),
                  "--cfg-options", f"train_cfg.max_epochs={epochs}")
    assert cfg.train_dataloader.batch_size == 16
    peak = 0.2 * 16 / 256  # 0.2 per 256 images, scaled to 16
    lrs, momenta = _schedule(cfg, epochs, iters_per_epoch=20)
    steps = 20 * epochs
    assert lrs[0] == pytest.approx(peak / 25)
    # the peak 30 % of the way through the run, whatever its length (torch's OneCycleLR)
    top = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(peak, rel=1e-3) and abs(top - 0.3 * steps) <= 1
    assert lrs[-1] < 0.01 * peak  # annealed at the last iteration, not cut off early
    # the momentum mirrors it: 0.95 at both ends, 0.85 where the lr peaks, and it never
    # rises while the lr does
    assert momenta[0] == pytest.approx(0.95) and momenta[-1] == pytest.approx(0.95, abs=1e-3)
    assert min(momenta) == pytest.approx(0.85, abs=1e-3) and momenta.index(min(momenta)) == top
    assert all(b <= a + 1e-12 for a, b in zip(momenta[:top], momenta[1:top + 1]))
    assert all(b >= a - 1e-12 for a, b in zip(momenta[top:], momenta[top + 1:]))


def test_bn_tiny_config_builds_net_a_with_batchnorm(tmp_path):
    from vggkit.factory import build_vgg
    data = make_image_folder(tmp_path / "img", per_class=2)
    cfg = _config(BN_TINY, "--data-root", str(data), "--work-dir", str(tmp_path / "w"))
    vgg = dict(cfg.model.vgg)
    net = build_vgg(vgg.pop("arch"), **vgg)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert net.batch_norm and len(bns) == len(convs) == 8  # A: 8 convs, one BN each
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.0125)  # the tiny recipe
    assert [p["type"] for p in cfg.param_scheduler] == ["OneCycleLR", "OneCycleMomentum"]
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=10.0)


def test_paper_tiny_keeps_the_papers_rules(tmp_path):
    """vgg_a_paper_tiny.py: lr 0.01 per 256 images, momentum 0.9 throughout (not the tiny
    config's cycle), the plateau rule, S in [32, 48] tested at Q = 40."""
    data = make_image_folder(tmp_path / "img", per_class=2)
    cfg = _config(PAPER_TINY, "--data-root", str(data), "--work-dir", str(tmp_path / "w"))
    opt = cfg.optim_wrapper.optimizer
    assert opt.lr == pytest.approx(0.01 * 16 / 256) and opt.momentum == 0.9
    assert [p["type"] for p in cfg.param_scheduler] == ["ReduceOnPlateauLR"]
    assert cfg.optim_wrapper.clip_grad is None  # the paper clips nothing
    train = cfg.train_dataloader.dataset.dataset.pipeline[0]
    assert tuple(train["scale"]) == (32, 48) and train.get("pad", 0) == 0
    assert cfg.val_dataloader.dataset.pipeline[1]["scale"] == 40


def test_pad_crop_is_torchvisions_pad4_random_crop(tmp_path):
    """LoadScaleCrop(scale=32, crop=32, pad=4) on a 32x32 image: every crop is a window of the
    image framed by 4 black pixels, at one of the 9 x 9 offsets torchvision's
    RandomCrop(32, padding=4) draws from."""
    import numpy as np
    from PIL import Image
    from vggkit.data.transforms import LoadScaleCrop
    rng = np.random.default_rng(0)
    pixels = rng.integers(1, 256, (32, 32, 3), dtype=np.uint8)  # no black: padding shows
    path = tmp_path / "x.png"  # lossless
    Image.fromarray(pixels).save(path)
    framed = np.pad(pixels, ((4, 4), (4, 4), (0, 0)))
    crop = LoadScaleCrop(scale=32, crop=32, pad=4)
    np.random.seed(0)
    seen = set()
    for _ in range(600):
        out = crop.transform({"img_path": str(path)})
        x0, y0, x1, y1 = out["crop_box"]
        assert (x1 - x0, y1 - y0) == (32, 32)
        np.testing.assert_array_equal(np.asarray(out["img"]),
                                      framed[y0 + 4:y1 + 4, x0 + 4:x1 + 4])
        seen.add((x0, y0))
    assert seen == {(x, y) for x in range(-4, 5) for y in range(-4, 5)}


def test_cifar_bench_skips_without_data_and_refuses_a_bad_root(tmp_path, monkeypatch, capsys):
    """make bench on a clone without ../shared: the cifar section exits 0 and says why."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import bench_cifar
    written = {}
    monkeypatch.setattr(bench_cifar, "ARCHIVE", tmp_path / "missing.tar.gz")
    monkeypatch.setattr(bench_cifar, "write_fragment",
                        lambda name, md, data: written.update(name=name, md=md, data=data))
    assert bench_cifar.main([]) == 0
    assert written["name"] == "cifar" and "Skipped" in written["md"]
    assert written["data"]["headlines"] == []
    assert bench_cifar.main(["--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no train/ folder" in err


def test_tiny_config_trains_a_single_epoch_and_resumes_its_schedule(tmp_path):
    """Every scheduler begins at 0, so a one-epoch run is valid; its checkpoint holds the
    schedulers' state as plain numbers (mmengine's OneCycleLR pickled a bound method, which
    the weights-only loader refuses), so a resume and a test of it load."""
    from vggkit.commands.train import main
    data = make_image_folder(tmp_path / "img", per_class=2)
    common = [str(TINY), "--data-root", str(data), "--work-dir", str(tmp_path / "w"),
              "--seed", "0"]
    assert main([*common, "--cfg-options", "train_cfg.max_epochs=1"]) == 0
    assert (tmp_path / "w" / "epoch_1.pth").exists()
    state = torch.load(tmp_path / "w" / "epoch_1.pth", weights_only=True)["param_schedulers"]
    assert [type(v) for s in state for v in s.values()
            if not isinstance(v, (int, float, str, bool, list, dict, type(None)))] == []
    # a second run from it (the schedule is rebuilt for 2 epochs; the state loads)
    assert main([*common, "--resume", str(tmp_path / "w" / "epoch_1.pth"),
                 "--cfg-options", "train_cfg.max_epochs=2"]) == 0
    assert (tmp_path / "w" / "epoch_2.pth").exists()


def test_full_make_bench_keeps_the_opt_in_cifar_section(tmp_path, monkeypatch):
    """`make bench` (every default section) replaces its own fragments; the cifar section's
    (half an hour of training, run only by `make bench ONLY=cifar`) must survive it."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import run_all
    results = tmp_path / "results"
    results.mkdir()
    for name in ("cifar", "inference"):
        (results / f"{name}.md").write_text(f"## {name} (old)\n")
        (results / f"{name}.json").write_text("{}")
    monkeypatch.setattr(run_all, "RESULTS", str(results))
    monkeypatch.setattr(run_all, "HERE", str(tmp_path))
    monkeypatch.setattr(run_all, "run", lambda name: (0.0, "skipped"))  # nothing measured
    run_all.main([])
    assert (results / "cifar.md").read_text() == "## cifar (old)\n"
    assert (results / "cifar.json").exists()
    assert not (results / "inference.md").exists()  # a default section's old figures go
    assert "Not measured" in (tmp_path / "RESULTS.md").read_text()
