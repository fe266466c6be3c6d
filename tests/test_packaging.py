"""What users of a library expect from its packaging (issue 27, part 4): --version, the
licence, a true python_requires, no needless dependency, the README's promises kept, and
``vggkit weights list PATTERN``."""
from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

import vggkit
from helpers import REPO
from vggkit import cli
from vggkit.commands import weights as weights_cli

SETUP = os.path.join(REPO, "setup.py")


def setup_kwargs() -> dict:
    """The literal keyword arguments of setup.py's ``setup(...)`` call, read without running it."""
    tree = ast.parse(open(SETUP, encoding="utf-8").read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:  # computed (version, packages, long_description)
            pass
    return out


def sources() -> list[str]:
    return sorted(glob.glob(os.path.join(REPO, "vggkit", "**", "*.py"), recursive=True))


def test_version_is_the_distributions(capsys):
    from importlib.metadata import version
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"vggkit {version('vggkit')}\n"
    assert version("vggkit") == vggkit.__version__  # setup.py reads it from the package
    assert "--version" in subprocess.run([sys.executable, "-m", "vggkit.cli", "--help"],
                                         capture_output=True, text=True).stdout


def test_licence_file_is_apache_2_as_setup_says():
    assert setup_kwargs()["license"] == "Apache-2.0"
    assert setup_kwargs()["license_files"] == ["LICENSE"]
    text = open(os.path.join(REPO, "LICENSE"), encoding="utf-8").read()
    assert re.match(r"\s*Apache License\s+Version 2\.0, January 2004", text)
    # the full terms, not a stub: all 9 sections and the end marker
    assert all(f"\n   {i}. " in text for i in range(1, 10))
    assert "END OF TERMS AND CONDITIONS" in text


def test_python_requires_is_true():
    """setup.py says >= 3.10: no source uses syntax or a standard-library call of 3.11+."""
    assert setup_kwargs()["python_requires"] == ">=3.10"
    # 3.11+: hashlib.file_digest, tomllib, typing.Self, ExceptionGroup, except*, datetime.UTC,
    # enum.StrEnum, asyncio.TaskGroup, contextlib.chdir; 3.12+: itertools.batched
    newer = re.compile(r"hashlib\.file_digest|\btomllib\b|import [^\n]*\bSelf\b|ExceptionGroup|"
                       r"except\s*\*|datetime\.UTC|StrEnum|TaskGroup|contextlib\.chdir|"
                       r"itertools\.batched|\.add_note\(")
    found = []
    for path in sources():
        text = open(path, encoding="utf-8").read()
        ast.parse(text, path, feature_version=(3, 10))  # SyntaxError on 3.11+ syntax
        code = "\n".join(ln.split("#")[0] for ln in text.splitlines())
        found += [f"{os.path.relpath(path, REPO)}: {m}" for m in newer.findall(code)]
    assert not found, found


def test_sha256_of_a_file_without_hashlib_file_digest(tmp_path, monkeypatch):
    """Python 3.10's hashlib has no file_digest: the one chunked helper does the work."""
    from vggkit.models.converters import source_record
    from vggkit.fileio import file_sha256
    data = os.urandom(3 * 1024 + 7)
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    monkeypatch.delattr(hashlib, "file_digest", raising=False)
    assert file_sha256(path, chunk=1024) == hashlib.sha256(data).hexdigest()
    assert source_record(str(path))["source_sha256"] == hashlib.sha256(data).hexdigest()


def python310() -> str | None:
    """A Python 3.10 interpreter on this machine, if there is one."""
    home = os.path.expanduser("~/.pyenv/versions")
    found = sorted(glob.glob(os.path.join(home, "3.10*", "bin", "python3.10")))
    return found[-1] if found else None


@pytest.mark.skipif(python310() is None, reason="no Python 3.10 interpreter here")
def test_every_module_compiles_under_python_3_10(tmp_path):
    proc = subprocess.run([python310(), "-c",
                           "import sys, py_compile\n"
                           "for p in sys.argv[1:]: py_compile.compile(p, doraise=True, "
                           f"cfile={str(tmp_path / 'x.pyc')!r})", *sources()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_protobuf_is_only_a_test_dependency():
    kwargs = setup_kwargs()
    assert not any(r.startswith("protobuf") for r in kwargs["install_requires"])
    assert any(r.startswith("protobuf") for r in kwargs["extras_require"]["dev"])
    users = [p for p in sources() if re.search(r"^\s*(from|import) google",
                                                open(p, encoding="utf-8").read(), re.M)]
    assert not users, users
    # the Caffe reader decodes the bytes itself: it imports with protobuf unavailable
    proc = subprocess.run([sys.executable, "-c",
                           "import sys; sys.modules['google'] = sys.modules['google.protobuf'] "
                           "= None\nimport vggkit.models.caffe, vggkit.models.converters"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_vggkit_name_the_readme_uses_exists():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    names = set(re.findall(r"(?<![\w/.-])vggkit\.([A-Za-z_]\w*)", text))
    assert {"save_checkpoint", "classify", "load_checkpoint"} <= names
    missing = [n for n in sorted(names) if not hasattr(vggkit, n)
               and not os.path.exists(os.path.join(REPO, "vggkit", n))
               and not os.path.exists(os.path.join(REPO, "vggkit", f"{n}.py"))]
    assert not missing, missing
    assert vggkit.save_checkpoint is __import__("vggkit.models.io").models.io.save_checkpoint


def test_save_checkpoint_round_trip(tmp_path):
    import torch
    net = vggkit.build_vgg("A", 3, width_mult=1 / 16, fc_width=8, input_size=32)
    path = str(tmp_path / "n.pth")
    vggkit.save_checkpoint(path, net.state_dict(), {"arch": "A", "num_classes": 3})
    other = vggkit.build_vgg("A", 3, width_mult=1 / 16, fc_width=8, input_size=32)
    vggkit.load_checkpoint(other, path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  other.state_dict().values()))


def test_docs_the_code_cites_exist():
    cited = set()
    for path in sources() + [os.path.join(REPO, "README.md")]:
        cited |= set(re.findall(r"\bdocs/[\w/.-]+\.md\b", open(path, encoding="utf-8").read()))
    assert "docs/weights.md" in cited
    missing = sorted(c for c in cited if not os.path.isfile(os.path.join(REPO, c)))
    assert not missing, missing
    weights_doc = open(os.path.join(REPO, "docs", "weights.md"), encoding="utf-8").read()
    for topic in ("$VGGKIT_CACHE", "weights/", "vggkit weights list 'vgg16*'",
                  "vggkit.weights.transform(name)", "vggkit classify", "categories"):
        assert topic in weights_doc, topic


def test_weights_list_filters_by_pattern(capsys):
    assert weights_cli.main(["list", "vgg16*", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert names == ["vgg16.torchvision", "vgg16_bn.torchvision", "vgg16.caffe", "vgg16.timm",
                     "vgg16.mmpretrain"]
    assert weights_cli.main(["list", "*.caffe"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in table[1:-1]] == ["vgg16.caffe", "vgg19.caffe"]
    assert weights_cli.main(["list", "resnet*"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no weights match 'resnet*'; known: vgg11.torchvision" in err[0]
