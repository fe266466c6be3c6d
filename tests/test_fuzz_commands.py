"""Every command's every option fed hostile values, as an attacker would (issue 25).

Each case runs ``vggkit.commands.<name>.main(argv)`` in-process from a valid, cheap
invocation with one argument replaced by a hostile value (empty, blank, NaN, inf,
negative, huge, malformed, a path outside the work dir, a path to the user's own file
or folder, a very long string, non-ASCII). The outcome must be one of:

* success (exit 0), or, for the commands whose work is training, reaching the point
  where training would start (``Runner.train``, stubbed to keep the suite short);
* exit 2 with exactly one ``PROG: error: ...`` line on stderr and no traceback.

Never an exception escaping ``main``, a hang (each case has a time limit), or a
changed or deleted file of the user's. The number of cases run is printed in the
terminal summary (see conftest.py).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import re
import signal
import traceback
from pathlib import Path

import pytest

from helpers import REPO, forget_runners, make_split_folder, write_store
from vggkit.cli import SUBCOMMANDS

#: cases run per command, printed by conftest's terminal summary
CASES: dict[str, int] = {}

TINY = str(REPO / "configs" / "tiny" / "vgg_a_tiny.py")
LIMIT_S = 120  # far above any single case here (the slowest, a test run, takes ~2 s)


class Hang(BaseException):
    """A case ran past its time limit (BaseException: no command may swallow it)."""


class Reached(BaseException):
    """Training would start here: the arguments were all accepted."""


def hostile(user: Path) -> list[str]:
    return ["", " ", "nan", "inf", "-inf", "-1", "0", "1e309", "99999999999999999999", "abc",
            "a=b", "=", "../../../../../etc/passwd", "/nonexistent-vggkit-dir/x",
            str(user / "thesis.txt"), str(user), "é☃\u202e", "x" * 3000]


def kept(before: dict[str, str], root: Path) -> bool:
    """Every file of ``before`` is still under ``root`` with the same bytes (vggkit may
    add files, such as a folder scan's cache, but never change or delete the user's)."""
    after = snapshot(root)
    return all(after.get(name) == digest for name, digest in before.items())


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def options_of(parser: argparse.ArgumentParser) -> list[tuple[str, int | str | None]]:
    """``(option or positional dest, nargs)`` of every argument that takes values."""
    out = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public listing
        if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction,  # noqa: SLF001
                               argparse._StoreFalseAction, argparse._StoreConstAction,
                               argparse.BooleanOptionalAction)):
            continue
        if action.nargs == 0:
            continue
        out.append((action.option_strings[0] if action.option_strings else action.dest,
                    action.nargs))
    return out


def with_value(base: list[str], positionals: list[str], arg: str, value: str,
               nargs) -> list[str]:
    """``base`` with ``arg`` (an option, or a positional's name) given ``value``."""
    if not arg.startswith("-"):
        argv = list(base)
        index = positionals.index(arg)
        argv[index] = value
        return argv
    count = nargs if isinstance(nargs, int) else 1
    return [*base, arg, *[value] * count] if not arg.startswith("--cfg") else \
        [*base, arg, value]


def run_case(main, argv: list[str], capsys) -> tuple[object, str]:
    def alarm(*_):
        raise Hang(f"no answer in {LIMIT_S} s")
    forget_runners()  # also those of earlier tests
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(LIMIT_S)
    try:
        try:
            status: object = main(argv)
        except SystemExit as exc:
            status = exc.code
        except Reached:
            status = "reached"
        except Exception as exc:  # noqa: BLE001 - an escaping exception is the finding
            where = traceback.extract_tb(exc.__traceback__)[-1]
            status = f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        forget_runners()
    return status, capsys.readouterr().err


def check_outcome(prog: str, argv: list[str], status: object, err: str) -> str | None:
    """What is wrong with a case's outcome, or None."""
    if "Traceback" in err or isinstance(status, str) and status != "reached":
        return f"traceback: {argv!r}: {status} {err[-400:]}"
    if status in (0, "reached"):
        return None
    if status != 2:
        return f"exit {status!r}: {argv!r}: {err[-300:]}"
    errors = [ln for ln in err.splitlines() if ": error: " in ln]
    # 'vggkit weights get: error: ...' for a sub-command's own parser
    if len(errors) != 1 or not re.match(rf"{re.escape(prog)}( [\w-]+)?: error: ", errors[0]):
        return f"not one error line: {argv!r}: {err[-400:]!r}"
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory, feature_setup):
    """Valid inputs for every command, and the user's own files the cases must not touch."""
    root = tmp_path_factory.mktemp("fuzz")
    user = root / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("four years of work\n")
    (user / "notes").mkdir()
    (user / "notes" / "a.txt").write_text("keep me\n")
    data = make_split_folder(root / "img", train=4, val=2)
    import numpy as np
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 12)
    store = root / "store"
    write_store(store, np.abs(rng.normal(size=(36, 8)) + 3 * np.eye(3, 8)[y]), y,
                [f"c{c}/{i}.jpg" for i, c in enumerate(y)], [""] * 36, ["a", "b", "c"],
                "imagefolder")
    return {"root": root, "user": user, "data": str(data), "store": str(store),
            "feat": feature_setup, "tiny_ckpt": tiny_checkpoint(root / "tiny.pth")}


def tiny_checkpoint(path: Path) -> str:
    """A checkpoint of the tiny config's net for the 3 classes of ``make_split_folder``."""
    import torch
    from mmengine.config import Config

    from helpers import CLASSES
    from vggkit.registry import MODELS
    cfg = Config.fromfile(TINY)
    cfg.model.vgg.num_classes = len(CLASSES)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save({"state_dict": model.state_dict(), "meta": {"classes": sorted(CLASSES)}}, path)
    return str(path)


def base_argv(command: str, world: dict, out: Path) -> list[str]:
    """A valid, cheap invocation of ``command`` writing under ``out``."""
    feat = world["feat"]
    return {
        "describe": ["A", "--input-size", "64"],
        "train": [TINY, "--data-root", world["data"], "--work-dir", str(out / "w")],
        "recipe-check": ["--work-dir", str(out / "w"), "--out", str(out / "r"), "--epochs", "1"],
        "test": [TINY, world["tiny_ckpt"], "--data-root", world["data"], "--scales", "32",
                 "--no-progress", "--threads", "1", "--out", str(out / "t.json")],
        "fuse": [],  # filled in by the test: needs posteriors files
        "classify": [min(str(p) for p in Path(world["data"]).rglob("*.jpg")), TINY,
                     world["tiny_ckpt"], "--scales", "32"],
        "localise": ["--demo", "--work-dir", str(out / "w")],
        "extract": [*feat["d"], "--data-root", str(feat["data"]), "--scales", "32",
                    "--no-progress", "--threads", "1", "--out", str(out / "f")],
        "transfer": ["--features", world["store"], "--C-grid", "1", "--splits", "2",
                     "--out", str(out / "s.json"), "--plot", str(out / "s.png")],
        "export": [TINY, world["tiny_ckpt"], "--format", "torchscript",
                   "--output", str(out / "net.pt")],
        "convert": ["--src", "torchvision", str(out / "missing.pth"), str(out / "o.pth")],
        "weights": ["list"],
        "stats": [world["data"], "--out", str(out / "stats.json"), "--num-images", "6",
                  "--no-progress"],
        "demo": ["--work-dir", str(out / "w"), "--no-progress"],
        "plugins": [],
    }[command]


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_hostile_values_end_in_one_line_or_success(command, world, tmp_path, monkeypatch,
                                                   capsys):
    module = importlib.import_module(SUBCOMMANDS[command][0])
    prog = f"vggkit {command}"
    monkeypatch.chdir(tmp_path)  # default outputs (work_dirs/...) land here
    monkeypatch.setenv("VGGKIT_CACHE", str(tmp_path / "cache"))

    def reached(*_a, **_k):
        raise Reached

    # training, the demo and the recipe check would run for minutes: stop them where the
    # arguments have all been checked and the work would begin
    import mmengine.runner
    monkeypatch.setattr(mmengine.runner.Runner, "train", reached)
    if command == "demo":
        monkeypatch.setattr(module, "run", reached)
    if command == "recipe-check":  # the tiny folder, not 1,409 digits written per case
        monkeypatch.setattr(module, "digits_root", lambda: world["data"])
        # every option is checked before the runs are trained; building their runners
        # only to stop them cost ~0.4 s a case
        import vggkit.engine.recipe_check as recipe_check
        monkeypatch.setattr(recipe_check, "train_all", reached)
    if command == "transfer":  # one deal of folds: the cases test the arguments, not the C
        import vggkit.transfer.folds as folds
        import vggkit.transfer.selection as selection
        for module_ in (folds, selection):
            monkeypatch.setattr(module_, "fold_repeats", lambda n_images: 1)
    if command == "localise":
        import vggkit.localisation.demo as loc_demo
        monkeypatch.setattr(loc_demo, "run_demo", reached, raising=False)
    base = base_argv(command, world, tmp_path)
    if command == "fuse":
        base = _posteriors(world, tmp_path, capsys)
    parser = module.build_parser()
    positionals = [a.dest for a in parser._actions  # noqa: SLF001
                   if not a.option_strings]
    values = hostile(world["user"])
    before = snapshot(world["user"])
    argvs = [with_value(base, positionals, arg, value, nargs)
             for arg, nargs in options_of(parser) for value in values
             # a positional the base invocation gives (not one it leaves out)
             if arg.startswith("-") or arg in positionals[:len(base)]]
    argvs += extra_cases(command, base, values)
    problems, cases = [], len(argvs)
    for argv in argvs:
        status, err = run_case(module.main, argv, capsys)
        problem = check_outcome(prog, argv, status, err)
        if problem:
            problems.append(problem)
        if not kept(before, world["user"]):
            problems.append(f"changed the user's files: {argv!r}")
            break
    CASES[command] = cases
    assert cases > 0
    assert not problems, f"{len(problems)} of {cases} cases:\n" + "\n".join(problems[:20])


def extra_cases(command: str, base: list[str], values: list[str]) -> list[list[str]]:
    """Cases the option listing cannot reach: a stray argument after a valid invocation,
    and sub-commands' own arguments."""
    cases = [[*base, v] for v in values]
    if command == "weights":
        cases += [[sub, *args] for sub in ("get", "list") for v in values
                  for args in ([v], ["--json", v])]
    return cases


def _posteriors(world: dict, out: Path, capsys) -> list[str]:
    """Two posteriors files of the tiny net (``vggkit test --save-posteriors``)."""
    from vggkit.commands import test as test_command
    files = []
    for q in ("32", "40"):
        path = out / f"post{q}.npz"
        assert test_command.main([TINY, world["tiny_ckpt"], "--data-root", world["data"],
                                  "--scales", q,
                                  "--no-progress", "--threads", "1",
                                  "--save-posteriors", str(path)]) == 0
        files.append(str(path))
    capsys.readouterr()
    return [*files, "--out", str(out / "fused.json")]
