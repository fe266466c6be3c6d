"""The plugin core: discovery, allow/deny lists, isolation, strict mode, conflicts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import DefaultScope

from helpers import register_plugin
from vggkit.plugins import PluginError, plugin_infos, reload_plugins
from vggkit.registry import TRANSFORMS, PluginConflictError

TRANSFORM_SRC = '''
import vggkit

class {cls}:
    def __init__(self, value=1):
        self.value = value
    def __call__(self, results):
        return results

@vggkit.hookimpl
def vggkit_register_transforms(register):
    register({cls})
'''


def _info(name):
    matches = [i for i in plugin_infos(include_builtin=True) if i.name == name]
    assert matches, f"plugin {name} not listed"
    return matches[0]


def test_entry_point_plugin_is_discovered_and_builds_by_both_names(site):
    site("vggkit-shapes", {"shapes": "shapes_plugin"},
         {"shapes_plugin": TRANSFORM_SRC.format(cls="Posterize")}, version="2.3")
    reload_plugins()
    info = _info("shapes")
    assert (info.distribution, info.version, info.status) == ("vggkit-shapes", "2.3", "loaded")
    assert info.hooks == ["vggkit_register_transforms"]
    assert info.registered == {"transforms": ["Posterize"]}
    # the config path users take: mmengine's root registry with default scope vggkit
    with DefaultScope.overwrite_default_scope("vggkit"):
        unqualified = MMENGINE_TRANSFORMS.build(dict(type="Posterize", value=3))
        qualified = MMENGINE_TRANSFORMS.build(dict(type="shapes.Posterize", value=4))
    assert type(unqualified).__name__ == "Posterize" and unqualified.value == 3
    assert type(qualified) is type(unqualified) and qualified.value == 4


def test_allow_list_and_deny_list(site, monkeypatch):
    site("vggkit-one", {"one": "one_plugin"}, {"one_plugin": TRANSFORM_SRC.format(cls="One")})
    site("vggkit-two", {"two": "two_plugin"}, {"two_plugin": TRANSFORM_SRC.format(cls="Two")})
    monkeypatch.setenv("VGGKIT_LOAD_PLUGINS", "one")
    reload_plugins()
    assert _info("one").status == "loaded" and _info("two").status == "blocked"
    assert TRANSFORMS.get("Two") is None and TRANSFORMS.get("One") is not None

    monkeypatch.setenv("VGGKIT_LOAD_PLUGINS", "")
    reload_plugins()
    assert {_info("one").status, _info("two").status} == {"blocked"}
    # built-ins are never blocked by the allow-list
    assert _info("vggkit").status == "loaded" and _info("vggkit").registered["transforms"]

    monkeypatch.delenv("VGGKIT_LOAD_PLUGINS")
    monkeypatch.setenv("VGGKIT_DISABLE_PLUGINS", "vggkit-two")  # by distribution name
    reload_plugins()
    assert _info("one").status == "loaded" and _info("two").status == "blocked"


def test_plugin_failing_on_import_is_isolated_and_listed(site):
    site("vggkit-broken", {"broken": "broken_plugin"},
         {"broken_plugin": "raise RuntimeError('no GPU driver found')\n"})
    site("vggkit-good", {"good": "good_plugin"}, {"good_plugin": TRANSFORM_SRC.format(cls="Good")})
    with pytest.warns(UserWarning) as record:
        reload_plugins()
    messages = [str(w.message) for w in record if "broken" in str(w.message)]
    assert len(messages) == 1
    assert "vggkit-broken" in messages[0] and "no GPU driver found" in messages[0]
    assert _info("broken").status == "failed"
    assert "RuntimeError: no GPU driver found" in _info("broken").error
    assert TRANSFORMS.get("Good") is not None


def test_plugin_failing_inside_a_hook_leaves_nothing_half_registered(site):
    src = '''
import vggkit
class Half:
    pass
@vggkit.hookimpl
def vggkit_register_transforms(register):
    register(Half)
    raise ValueError("bad eigenvectors")
'''
    site("vggkit-half", {"half": "half_plugin"}, {"half_plugin": src})
    with pytest.warns(UserWarning, match="bad eigenvectors"):
        reload_plugins()
    assert _info("half").status == "failed"
    assert TRANSFORMS.get("Half") is None and TRANSFORMS.get("half.Half") is None


def test_strict_mode_raises(site, monkeypatch):
    site("vggkit-broken", {"broken": "broken_plugin2"}, {"broken_plugin2": "import no_such_module\n"})
    monkeypatch.setenv("VGGKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="vggkit-broken.*no_such_module"):
        reload_plugins()


def test_conflicting_unqualified_name_names_both_plugins(site):
    site("vggkit-a", {"alpha": "alpha_plugin"}, {"alpha_plugin": TRANSFORM_SRC.format(cls="Solarize")})
    site("vggkit-b", {"beta": "beta_plugin"}, {"beta_plugin": TRANSFORM_SRC.format(cls="Solarize")})
    reload_plugins()
    with pytest.raises(PluginConflictError) as err:
        TRANSFORMS.build(dict(type="Solarize"))
    assert "alpha.Solarize" in str(err.value) and "beta.Solarize" in str(err.value)
    a = TRANSFORMS.build(dict(type="alpha.Solarize"))
    b = TRANSFORMS.build(dict(type="beta.Solarize"))
    assert type(a).__module__ == "alpha_plugin" and type(b).__module__ == "beta_plugin"


def test_builtin_name_is_not_shadowed(site):
    builtin = [n for n in TRANSFORMS.known_names() if n.startswith("vggkit.")]
    assert builtin, "no built-in transform registered: the built-in plugin is broken"
    name = builtin[0].split(".", 1)[1]
    original = TRANSFORMS.get(name)
    site("vggkit-shadow", {"shadow": "shadow_plugin"}, {"shadow_plugin": TRANSFORM_SRC.format(cls=name)})
    with pytest.warns(UserWarning, match=f"shadow.{name}"):
        reload_plugins()
    assert TRANSFORMS.get(name) is TRANSFORMS.get(f"vggkit.{name}")
    assert TRANSFORMS.get(name).__module__ == original.__module__
    assert TRANSFORMS.get(f"shadow.{name}").__module__ == "shadow_plugin"


def test_registering_the_identical_object_twice_is_a_noop():
    import types

    import vggkit

    class Twice:
        pass

    ns = types.ModuleType("twice_plugin")  # a plugin is any module-like object

    @vggkit.hookimpl
    def vggkit_register_transforms(register):
        register(Twice)
        register(Twice)
        register(Twice, "Twice")

    ns.vggkit_register_transforms = vggkit_register_transforms
    try:
        info = register_plugin(ns, "twice")
        assert info.registered == {"transforms": ["Twice"]}
        assert TRANSFORMS.get("Twice") is Twice and TRANSFORMS.get("twice.Twice") is Twice
    finally:
        reload_plugins()


def test_unknown_hook_fails_the_plugin_loudly(site):
    # e.g. a hook of a newer vggkit: a plugin using it must not lose its components
    # silently (renamed hooks still work: tests/test_messages_cache_hooks.py)
    src = TRANSFORM_SRC.format(cls="Stale") + (
        "\n@vggkit.hookimpl\ndef vggkit_register_optimisers(register):\n    register(Stale)\n")
    site("vggkit-stale", {"stale": "stale_plugin"}, {"stale_plugin": src})
    with pytest.warns(UserWarning, match="vggkit-stale.*unknown hook vggkit_register_optimisers"):
        reload_plugins()
    assert _info("stale").status == "failed"
    assert TRANSFORMS.get("Stale") is None and TRANSFORMS.get("stale.Stale") is None


def test_first_lookup_loads_the_plugins(site):
    root = site("vggkit-lazy", {"lazy": "lazy_plugin"},
                {"lazy_plugin": TRANSFORM_SRC.format(cls="Lazy")})
    code = ("from vggkit.registry import TRANSFORMS\n"
            "assert TRANSFORMS.get('Lazy').__module__ == 'lazy_plugin'\n"
            "assert TRANSFORMS.get('vggkit.RandomCrop') is not None\n")
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def _cli(env_extra, site_dir, *args):
    env = dict(os.environ, PYTHONPATH=str(site_dir), **env_extra)
    return subprocess.run([sys.executable, "-m", "vggkit.cli", "plugins", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_lists_plugins_as_json_and_exit_codes(site):
    root = site("vggkit-good", {"good": "good_cli_plugin"},
                {"good_cli_plugin": TRANSFORM_SRC.format(cls="GoodCli")})
    site("vggkit-broken", {"broken": "broken_cli_plugin"},
         {"broken_cli_plugin": "raise ImportError('missing libfoo')\n"})
    proc = _cli({}, root, "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)}
    assert set(listed["good"]) == {"name", "distribution", "version", "status", "error",
                                   "hooks", "registered"}
    assert listed["good"]["registered"] == {"transforms": ["GoodCli"]}
    assert listed["broken"]["status"] == "failed" and "missing libfoo" in listed["broken"]["error"]
    assert not any(name.startswith("vggkit.") for name in listed)

    with_builtins = {p["name"] for p in json.loads(_cli({}, root, "--json", "--all").stdout)}
    assert "vggkit" in with_builtins

    strict = _cli({"VGGKIT_STRICT_PLUGINS": "1"}, root, "--json")
    assert strict.returncode != 0 and "missing libfoo" in strict.stderr
