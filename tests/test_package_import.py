"""What importing vggkit costs and installs: no torch for ``import vggkit`` and the
commands' parsers (``--help`` and argument errors stay quick), and the checkpoint
allow-list in place as soon as a registry -- the road of every mmengine runner -- is."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vggkit.cli import SUBCOMMANDS

# the command whose parser needs torch: convert lists the registered weight converters, a
# plugin's among them (loading the plugins imports torch)
HEAVY_COMMANDS = {"convert"}
# every other command's parser is built without torch (its body imports it)
LIGHT_COMMANDS = [name for name in SUBCOMMANDS if name not in HEAVY_COMMANDS]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("command", LIGHT_COMMANDS)
def test_import_vggkit_and_a_commands_parser_leave_torch_unloaded(command):
    proc = _python(
        "import importlib, sys, vggkit, vggkit.cli\n"
        f"c = importlib.import_module({SUBCOMMANDS[command][0]!r})\n"
        "c.build_parser().format_help()\n"
        "assert 'torch' not in sys.modules\n")
    assert proc.returncode == 0, proc.stderr


def test_a_registry_allow_lists_mmengines_checkpoint_types():
    proc = _python(
        "import torch\n"
        "from mmengine.logging.history_buffer import HistoryBuffer\n"
        "assert HistoryBuffer not in torch.serialization.get_safe_globals()\n"
        "import vggkit.registry\n"
        "assert HistoryBuffer in torch.serialization.get_safe_globals()\n")
    assert proc.returncode == 0, proc.stderr
