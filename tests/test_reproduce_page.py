"""docs/reproduce.md, the map from the paper's table rows to configs and commands.

Every config the page names exists and loads; every command's flags are accepted by its
command's parser; every checkpoint, posteriors file or feature store a command reads is written
by a command above it (the page's order is the order to run it in); every row of Tables 3-11
is there with the paper's figure; the configs those rows name have the rows' settings. The
expected rows and figures are typed from the paper, not read from the page."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from mmengine.config import Config

from helpers import REPO
from vggkit.cli import SUBCOMMANDS

PAGE = (REPO / "docs" / "reproduce.md").read_text(encoding="utf-8")
CONFIG = re.compile(r"configs/[\w/]+\.py")
#: what a command reads or writes that a run makes (not configs, not datasets)
MADE = ("work_dirs/", "feats/")


def commands() -> list[list[str]]:
    """Every command on the page, in page order: the code in its tables' cells and the lines
    of its code blocks (prose that names a command is not one)."""
    found = []
    for block, row in re.findall(r"```(?:bash)?\n(.*?)```|^(\|[^\n]*)$", PAGE,
                                 flags=re.S | re.M):
        texts = block.replace("\\\n", " ").splitlines() if block else re.findall(r"`([^`]+)`", row)
        found += [shlex.split(t) for t in texts if t.startswith(("vggkit ", "tools/dist_train.sh "))]
    return found


def parse(argv: list[str]):
    """``(subcommand, parsed args)``; argparse's exit on a bad flag fails the test."""
    if argv[0] == "tools/dist_train.sh":  # CONFIG NGPUS [train.py options...]
        assert argv[2].isdigit(), f"{argv}: NGPUS must be a number"
        name, rest = "train", [argv[1], *argv[3:], "--launcher", "pytorch"]
    else:
        name, rest = argv[1], argv[2:]
    assert name in SUBCOMMANDS, f"{argv}: no vggkit subcommand '{name}'"
    parser = importlib.import_module(SUBCOMMANDS[name][0]).build_parser()
    try:
        return name, parser.parse_args(rest)
    except SystemExit:
        pytest.fail(f"the flags of '{shlex.join(argv)}' are refused by vggkit {name}")


def stem(path: str) -> str:
    return Path(path).stem


def test_every_config_on_the_page_exists_and_loads():
    names = sorted(set(CONFIG.findall(PAGE)))
    assert len(names) > 20
    for name in names:
        assert (REPO / name).is_file(), name
        Config.fromfile(str(REPO / name))


def test_every_paper_config_is_on_the_page():
    ours = {str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.py")}
    ours |= {str(p.relative_to(REPO)) for p in (REPO / "configs/loc").glob("vgg*.py")}
    assert ours - set(CONFIG.findall(PAGE)) == set()


def test_every_command_parses():
    found = commands()
    assert len(found) > 60
    used = {parse(argv)[0] for argv in found}
    assert used == {"train", "test", "fuse", "localise", "extract", "transfer"}


def _pairs(name: str, args) -> list[tuple[str, str]]:
    """The ``(config, checkpoint)`` pairs a command runs."""
    if name == "extract":
        return list(zip(args.pairs[::2], args.pairs[1::2]))
    if name == "localise":
        return ([(args.config, args.checkpoint)] if args.config else []) + \
            [(v[0], v[1]) for v in args.localiser] + [(args.cls_config, args.cls_checkpoint)]
    if name == "test":
        return [(args.config, args.checkpoint)]
    return []


def _starts_from(config: str) -> list[str]:
    """The checkpoints a training config loads."""
    cfg = Config.fromfile(str(REPO / config))
    vgg = cfg.model.get("vgg", {})
    return [p for p in (cfg.get("load_from"), vgg.get("init_checkpoint")) if p]


def test_commands_read_only_what_commands_above_them_wrote():
    written: set[str] = set()  # work dirs and files

    def made(path: str) -> bool:
        return any(path == w or path.startswith(w + "/") for w in written)

    for argv in commands():
        name, args = parse(argv)
        outputs = [p for p in (getattr(args, "out", None), getattr(args, "save_posteriors", None))
                   if p]
        if name == "train":
            for ckpt in _starts_from(args.config):
                assert made(ckpt), f"{args.config} starts from {ckpt}, which no run above wrote"
            outputs.append(f"work_dirs/{stem(args.config)}")
        for config, ckpt in _pairs(name, args):
            # a net's checkpoint is the run of its own config
            assert ckpt.startswith(f"work_dirs/{stem(config)}/"), (config, ckpt)
        reads = [t for t in argv if t.startswith(MADE) and t not in outputs]
        for path in reads:
            assert made(path), f"'{shlex.join(argv)}' reads {path}, which no command above writes"
        written.update(outputs)


# -- the rows: label on the page -> the paper's figure in its last column -------------------
# Tables 3 and 4, one line a net: config, train S, single-scale and multi-scale error
TABLES_3_4 = """
A 256 29.6/10.4 -
A-LRN 256 29.7/10.5 -
B 256 28.7/9.9 28.2/9.6
C 256 28.1/9.4 27.7/9.2
C 384 28.1/9.3 27.8/9.2
C [256,512] 27.3/8.8 26.3/8.2
D 256 27.0/8.8 26.6/8.6
D 384 26.8/8.7 26.5/8.6
D [256,512] 25.6/8.1 24.8/7.5
E 256 27.3/9.0 26.9/8.7
E 384 26.9/8.7 26.7/8.6
E [256,512] 25.5/8.0 24.8/7.5
"""
ROWS = {}
for line in TABLES_3_4.split("\n")[1:-1]:
    net, s, *errors = line.split()
    scale = "= " + s if s.isdigit() else "∈ [256, 512]"
    for table, error in zip((3, 4), errors):
        if error != "-":
            ROWS[f"Table {table}, {net}, S {scale}"] = error.replace("/", " / ")
ROWS.update({
    "Table 5, D": "24.6 / 7.5; 24.4 / 7.2", "Table 5, E": "24.6 / 7.4; 24.4 / 7.1",
    "ILSVRC submission, 7 nets": "24.7 / 7.5; 7.3",
    "Table 6, D + E": "24.0 / 7.1, 7.0; 23.9 / 7.2, —; 23.7 / 6.8, 6.8",
    "Table 7, 1 net": "24.4 / 7.1; 7.0",
    "Table 8, SCR, FC layers": "36.4", "Table 8, PCR, FC layers": "34.3",
    "Table 8, PCR, all layers": "33.1", "Table 9, S = 256, Q = 256": "29.5",
    "Table 9, S = 384, Q = 384": "28.2 (test 26.7)", "Table 9, S = 384, Q ∈ {352, 384}": "27.5",
    "Table 9, fusion of 256 / 256 and 384 / {352, 384}": "26.9 (test 25.3)",
    "Table 10, VGG": "26.9 (test 25.3)",
})
for net, figures in (("Net-D", ("89.3", "89.0", "91.8 ± 1.0", "85.0 ± 0.2")),
                     ("Net-E", ("89.3", "89.0", "92.3 ± 0.5", "85.1 ± 0.3")),
                     ("Net-D & Net-E", ("89.7", "89.3", "92.7 ± 0.5", "86.2 ± 0.3"))):
    for data, figure in zip(("VOC-2007", "VOC-2012", "Caltech-101", "Caltech-256"), figures):
        ROWS[f"Table 11, {net}, {data}"] = figure


def page_rows() -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in PAGE.splitlines() if line.startswith("| ")]


@pytest.mark.parametrize("label", sorted(ROWS))
def test_every_row_is_on_the_page_with_the_papers_figure(label):
    # a label names a row, or a combined row listing it ("Table 4, D, ...; Table 5, D: ...")
    rows = [r for r in page_rows() if re.search(re.escape(label) + r"(?=$|[;:,]| \()", r[0])]
    assert rows, f"no row of docs/reproduce.md for {label}"
    assert any(ROWS[label] in r[-1] for r in rows), (label, [r[-1] for r in rows])
    assert all(CONFIG.search(r[1]) for r in rows), f"{label}: no config in the row"


def test_the_rows_configs_have_the_rows_settings():
    def load(name):
        return Config.fromfile(str(REPO / "configs" / name))
    c = load("vgg16_c_jitter.py")  # C jittered, fine-tuned from C at S = 384 (Sect. 3.1)
    assert (c.model.vgg.arch, c.train_dataloader.dataset.dataset.pipeline[0].scale) == \
        ("C", (256, 512))
    assert (c.load_from, c.optim_wrapper.optimizer.lr) == ("work_dirs/vgg16_c_s384/epoch_74.pth",
                                                           1e-3)
    for path in (REPO / "configs/loc").glob("vgg16_*.py"):
        cfg = Config.fromfile(str(path))
        s = 384 if path.stem.endswith("_s384") else 256
        classifier = "vgg16_d_s384" if s == 384 else "vgg16_d"
        assert cfg.model.regression == ("single_class" if "_scr" in path.stem else "per_class")
        assert cfg.model.finetune == ("fc" if "_fc_only" in path.stem else "all")
        assert cfg.model.vgg.init_checkpoint == f"work_dirs/{classifier}/epoch_74.pth", path
        train = cfg.train_dataloader.dataset.dataset.pipeline[1]
        assert (train.type, train.scale) == ("BoxRandomScaleCrop", s), path
        for loader in (cfg.val_dataloader, cfg.test_dataloader):  # Table 8: centre crop, Q = S
            assert loader.dataset.pipeline[1].scale == s, path
        assert cfg.optim_wrapper.optimizer.lr == 1e-3


def test_the_fc_only_jitter_config_trains_the_fc_layers_only():
    """Table 6's submission D: a step of its optimiser moves fc6-fc8 and no conv weight."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from vggkit.engine.classifier import VGGClassifier
    cfg = Config.fromfile(str(REPO / "configs/vgg16_jitter_fc_only.py"))
    torch.manual_seed(0)
    model = VGGClassifier(dict(cfg.model.vgg, width_mult=1 / 16, fc_width=16, num_classes=3,
                               init="kaiming"))
    optim = build_optim_wrapper(model, dict(cfg.optim_wrapper, accumulative_counts=1))
    before = {k: v.clone() for k, v in model.vgg.state_dict().items()}
    loss = model.vgg(torch.randn(2, 3, 224, 224)).logsumexp(1).sum()
    optim.update_params(loss)
    moved = {k for k, v in model.vgg.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith("head.") for k in moved), sorted(moved)
    assert {k.split(".")[1] for k in moved} == {"fc6", "fc7", "fc8"}
