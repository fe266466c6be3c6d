"""Nothing lost, nothing silently wrong (issue 25): the weights cache verifies what it finds
and has one layout, renamed plugin hooks keep working with a deprecation warning, and
messages are one line that says the right thing (argparse errors, describe, plugin
allow-lists, '1 class')."""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from test_cli_errors import one_error_line
from test_weights import NAME, env, register, served, server, tiny_entry  # noqa: F401 (fixtures)
from vggkit.cli import SUBCOMMANDS
from vggkit.commands import describe as describe_cli
from vggkit.commands import weights as weights_cli

GARBAGE = b"\x00\x13 not a checkpoint \xff" * 8


@pytest.fixture
def offline(env, monkeypatch):
    """The env fixture's caches, downloads off: nothing here may reach the network."""
    monkeypatch.setenv("VGGKIT_OFFLINE", "1")
    return env


def list_status(capsys) -> tuple[dict[str, str], str, list[str]]:
    """``vggkit weights list``: NAME -> STATUS, the footer, and the stderr lines."""
    assert weights_cli.main(["list"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    rows = [ln for ln in lines[1:] if ln.split()[0] not in ("cache:", "read")]
    return ({ln.split()[0]: ln.rsplit("  ", 1)[-1].strip() for ln in rows}, out,
            [ln for ln in err.splitlines() if ln.strip()])


# -- item 9: the weights cache --------------------------------------------------------
@pytest.mark.parametrize("where", ["weights", "legacy"])
def test_a_garbage_cached_checkpoint_is_named_kept_and_never_used(offline, capsys, where):
    # the file: $VGGKIT_CACHE/vgg13.torchvision.pth (where an earlier vggkit put it),
    # and the same file where vggkit puts it now
    folder = offline["vggkit"] / ("weights" if where == "weights" else "")
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "vgg13.torchvision.pth"
    bad.write_bytes(GARBAGE)

    assert weights_cli.main(["get", "vgg13.torchvision"]) == 2
    line = one_error_line(capsys, "vggkit weights")
    assert f"'{bad}'" in line and "delete it" in line and "it is it" not in line
    status, _, err = list_status(capsys)
    assert status["vgg13.torchvision"] == "unusable"
    assert status["vgg16.torchvision"] == "not cached"
    assert len(err) == 1 and f"'{bad}'" in err[0] and "delete it" in err[0]
    from vggkit.factory import build_vgg
    from vggkit.weights import WeightsError
    with pytest.raises(WeightsError, match="delete it"):  # what --weights NAME goes through
        build_vgg("B", weights="vgg13.torchvision")
    assert bad.read_bytes() == GARBAGE  # vggkit did not write it: it is left alone


def test_a_tampered_converted_checkpoint_is_refused_by_get(env, served, capsys):
    from vggkit.weights import converted_path, get_weights_entry
    assert weights_cli.main(["get", NAME, "--no-progress"]) == 0
    capsys.readouterr()
    path = converted_path(get_weights_entry(NAME))
    ckpt = torch.load(path, weights_only=True)
    first = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][first] = ckpt["state_dict"][first] + 1  # the recorded hash is now wrong
    torch.save(ckpt, path)
    assert weights_cli.main(["get", NAME, "--no-progress"]) == 2
    line = one_error_line(capsys, "vggkit weights")
    assert f"'{path}'" in line and "damaged" in line and "delete it" in line
    assert path.exists()


def test_weights_get_takes_catalogue_names_only(offline, tmp_path, capsys):
    existing = tmp_path / "passwd"
    existing.write_text("root:x:0:0\n")
    assert weights_cli.main(["get", str(existing)]) == 2
    line = one_error_line(capsys, "vggkit weights")
    assert f"unknown weights '{existing}'" in line and "not a catalogue name" in line
    assert "vgg16.torchvision" in line  # the known names
    assert weights_cli.main(["get", "vgg16.torchvison"]) == 2
    assert "did you mean vgg16.torchvision" in one_error_line(capsys, "vggkit weights")
    # all names are checked before anything is fetched
    assert weights_cli.main(["get", "vgg16.caffe", "../../etc/passwd"]) == 2
    assert "'../../etc/passwd'" in one_error_line(capsys, "vggkit weights")


def test_one_cache_root_with_the_same_folders_whether_or_not_it_is_set(tmp_path, monkeypatch):
    from vggkit import demo
    from vggkit.data import filelist
    from vggkit.inference import autotune
    from vggkit.weights import weights_dir
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("VGGKIT_AUTOTUNE_CACHE", raising=False)
    root = tmp_path / "xdg" / "vggkit"

    def layout():
        return (weights_dir(), autotune.cache_path(), demo.digits_dir(),
                filelist._cache_paths("/data", "k")[1])

    expected = (root / "weights", str(root / "autotune" / "autotune.json"),
                str(root / "digits-v1"), str(root / "filelists" / "vggkit_filelist.k.json.gz"))
    monkeypatch.delenv("VGGKIT_CACHE", raising=False)
    assert layout() == expected
    monkeypatch.setenv("VGGKIT_CACHE", str(root))  # naming the default changes nothing
    assert layout() == expected
    monkeypatch.setenv("VGGKIT_CACHE", str(tmp_path / "elsewhere"))
    assert layout()[0] == tmp_path / "elsewhere" / "weights"


def test_weights_at_the_old_location_are_still_found(env, served, monkeypatch, capsys):
    from vggkit.weights import resolve_weights, weights_dir
    converted = resolve_weights(NAME, progress=False)
    root = env["vggkit"]
    # the layout of an earlier vggkit with VGGKIT_CACHE set: everything directly in it
    for name in (f"{NAME}.pth", f"{NAME}.json"):
        shutil.move(weights_dir() / name, root / name)
    shutil.move(weights_dir() / "downloads", root / "downloads")
    monkeypatch.setenv("VGGKIT_OFFLINE", "1")
    assert resolve_weights(NAME) == str(root / f"{NAME}.pth") != converted
    status, out, err = list_status(capsys)
    assert status[NAME] == "cached" and not err
    assert f"read from the old location: {root / f'{NAME}.pth'}" in out
    assert str(weights_dir()) in out.splitlines()[-1]
    # the published file at the old location is found too (converted anew, into weights/)
    os.remove(root / f"{NAME}.pth")
    assert resolve_weights(NAME) == converted


# -- item 11: renamed hooks -----------------------------------------------------------
OLD_HOOKS_PLUGIN = '''
import vggkit

class OldBackbone:
    pass

class OldHead:
    pass

@vggkit.hookimpl
def vggkit_register_backbones(register):
    register(OldBackbone)

@vggkit.hookimpl
def vggkit_register_heads(register):
    register(OldHead)
'''


def test_a_plugin_using_renamed_hooks_still_loads_with_a_deprecation_warning(site):
    from vggkit.hookspecs import HookDeprecationWarning
    from vggkit.plugins import plugin_infos, reload_plugins
    from vggkit.registry import MODELS
    site("vggkit-old", {"old": "old_hooks_plugin"}, {"old_hooks_plugin": OLD_HOOKS_PLUGIN})
    with pytest.warns(DeprecationWarning) as record:
        reload_plugins()
    messages = sorted(str(w.message) for w in record if w.category is HookDeprecationWarning)
    assert len(messages) == 2
    for old, message in zip(("vggkit_register_backbones", "vggkit_register_heads"), messages):
        assert f"'old' implements {old}" in message and "renamed vggkit_register_models" in message
    assert all(w.filename.endswith("old_hooks_plugin.py") for w in record
               if w.category is HookDeprecationWarning)  # points at the plugin's code
    (info,) = [i for i in plugin_infos() if i.name == "old"]
    assert info.status == "loaded" and info.hooks == ["vggkit_register_models"]
    assert sorted(info.registered["models"]) == ["OldBackbone", "OldHead"]
    assert MODELS.get("OldBackbone").__module__ == "old_hooks_plugin"
    assert MODELS.get("old.OldHead").__name__ == "OldHead"


def test_the_renamed_hook_warning_is_shown_by_default(tmp_path):
    """Python hides DeprecationWarnings outside __main__; this one reaches the user."""
    (tmp_path / "old_hooks_plugin.py").write_text(OLD_HOOKS_PLUGIN)
    code = textwrap.dedent("""
        import old_hooks_plugin
        from vggkit.plugins import PluginInfo, load_plugins
        info = PluginInfo("old")
        load_plugins().add(old_hooks_plugin, info)
        assert info.status == "loaded"
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("HookDeprecationWarning") == 2, run.stderr
    assert "renamed vggkit_register_models" in run.stderr


# -- item 12: messages ----------------------------------------------------------------
def test_describe_refuses_an_input_where_pool5_is_empty(capsys):
    assert describe_cli.main(["A", "--input-size", "31"]) == 2
    line = one_error_line(capsys, "vggkit describe")
    assert "input size 31" in line and "minimum is 32" in line
    from vggkit.models.describe import describe
    layers = {l["name"]: l for l in describe("A", input_size=32)["layers"]}
    assert layers["pool5"]["output"] == [512, 1, 1]
    assert layers["fc6"]["receptive_field"] >= layers["pool5"]["receptive_field"]


@pytest.mark.parametrize("var", ["VGGKIT_LOAD_PLUGINS", "VGGKIT_DISABLE_PLUGINS"])
def test_a_plugin_list_naming_no_installed_plugin_is_reported(site, monkeypatch, var):
    from vggkit.plugins import PluginError, reload_plugins
    site("vggkit-shapes", {"shapes": "shapes_plugin"}, {"shapes_plugin": "x = 1\n"})
    monkeypatch.setenv(var, "shapes,shapez")
    with pytest.warns(UserWarning) as record:
        reload_plugins()
    (message,) = [str(w.message) for w in record if var in str(w.message)]
    assert "'shapez'" in message and "shapes (vggkit-shapes)" in message
    assert "'shapes'" not in message
    monkeypatch.setenv(var, "vggkit-shapes")  # a distribution name is a plugin's name too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reload_plugins()
    monkeypatch.setenv(var, "shapez")
    monkeypatch.setenv("VGGKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'shapez'"):
        reload_plugins()


def test_counts_of_one_are_singular(register):
    from vggkit.errors import plural
    from vggkit.evaluation.metrics import format_results, true_class_rank
    from vggkit.weights import WeightsError
    from vggkit.weights.resolve import pretrained_build_args
    assert [plural(n, "class") for n in (0, 1, 2)] == ["0 classes", "1 class", "2 classes"]
    assert format_results({"num_images": 1}) == "1 image"
    with pytest.raises(ValueError, match=r"for 1 class; got"):
        true_class_rank(torch.zeros(2, 1), torch.tensor([0, 1]))
    register(tiny_entry("tiny.pth", None, num_classes=1))
    with pytest.raises(WeightsError, match="have 1 class, not num_classes=7"):
        pretrained_build_args(NAME, "A", 7, {})


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_argparse_error_is_one_line(command, capsys):
    module = importlib.import_module(SUBCOMMANDS[command][0])
    prog = f"vggkit {command}"
    with pytest.raises(SystemExit) as exit_:
        module.main(["--no-such-option"])
    assert exit_.value.code == 2
    line = one_error_line(capsys, prog)
    assert line.endswith(f"(see '{prog} --help')"), line


def test_sub_command_and_top_level_argparse_errors_are_one_line(capsys):
    from vggkit import cli
    with pytest.raises(SystemExit) as exit_:
        weights_cli.main(["get"])
    assert exit_.value.code == 2
    line = one_error_line(capsys, "vggkit weights get")
    assert "required: NAME" in line and line.endswith("(see 'vggkit weights get --help')")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["trian"])
    assert exit_.value.code == 2
    assert "invalid choice: 'trian'" in one_error_line(capsys, "vggkit")
