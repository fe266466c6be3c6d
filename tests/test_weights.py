"""Published weights by name (issue 15), without the network: tiny nets in the publishers'
layouts stand in for the real files, in a fake torch.hub / Hugging Face cache or served
by a local http.server that supports Range requests."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from torch import nn

from vggkit.commands import weights as weights_cli
from vggkit.hookspecs import hookimpl
from vggkit.factory import build_vgg
from vggkit.models import read_checkpoint
from vggkit.models.converters import TimmConverter
from vggkit.models.from_config import build_from_config
from helpers import random_weights
from vggkit.weights import (ChecksumError, DownloadError, OfflineError, WeightsEntry,
                            WeightsError, config_for_weights, converted_path, download_path,
                            get_weights_entry, resolve_weights, weights_names)
from vggkit.weights import resolve as resolve_module
from vggkit.weights.download import download

NAME = "tinyvgg.test"
#: build_vgg arguments of the tiny net: configuration A at 1/16 width, a 32-pixel crop
TINY = {"width_mult": 1 / 16, "fc_width": 16, "input_size": 32}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Every cache in tmp_path; downloads allowed, no proxy."""
    for var in ("VGGKIT_OFFLINE", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    paths = {k: tmp_path / k for k in ("vggkit", "torch", "hf", "xdg")}
    monkeypatch.setenv("VGGKIT_CACHE", str(paths["vggkit"]))
    monkeypatch.setenv("TORCH_HOME", str(paths["torch"]))
    monkeypatch.setenv("HF_HOME", str(paths["hf"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths["xdg"]))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # as if torch.hub.set_dir was never called
    return paths


@pytest.fixture
def register():
    """Register catalogue entries through the hook, as a plugin does (once per test)."""
    from helpers import register_plugin
    from vggkit.plugins import reload_plugins

    def add(*entries):
        class WeightsPlugin:
            @hookimpl
            def vggkit_register_weights(self, register):
                for entry in entries:
                    register(entry)
        info = register_plugin(WeightsPlugin(), "weights_tests")
        assert info.status == "loaded", info.error
    yield add
    reload_plugins()


def tiny_torchvision(seed: int = 0) -> nn.Module:
    """A torchvision ``VGG`` of configuration A at 1/16 width, 5 classes, for 32-pixel crops."""
    from torchvision.models.vgg import VGG as TorchvisionVGG, make_layers
    with torch.device("meta"):  # skip torchvision's 100M-parameter classifier
        model = TorchvisionVGG(make_layers([4, "M", 8, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"]),
                               num_classes=5, init_weights=False)
        model.avgpool = nn.AdaptiveAvgPool2d(1)  # pool5 of a 32-pixel crop is 1x1
        model.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(True), nn.Dropout(),
                                         nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
                                         nn.Linear(16, 5))
    return random_weights(model, seed)


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def tiny_entry(filename: str, sha256: str | None, url: str = "http://127.0.0.1:9/none",
               **kwargs) -> WeightsEntry:
    return WeightsEntry(**{
        "name": NAME, "arch": "A", "urls": (url,), "filename": filename,
        "converter": "torchvision", "sha256": sha256, "num_classes": 5, "build_args": TINY,
        "test_scales": (40,), "publisher_cache": "torch_hub", **kwargs})


@pytest.fixture
def no_socket(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a socket was opened: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def in_torch_hub(env, register, reference: nn.Module) -> None:
    """``reference``'s weights in the fake torch.hub cache, named as torchvision names its
    files, and registered as the catalogue entry NAME."""
    data = torch_bytes(reference.state_dict())
    digest = hashlib.sha256(data).hexdigest()
    filename = f"tinyvgg-{digest[:8]}.pth"
    (env["torch"] / "hub" / "checkpoints").mkdir(parents=True)
    (env["torch"] / "hub" / "checkpoints" / filename).write_bytes(data)
    register(tiny_entry(filename, digest[:8]))


def x_batch() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_torch_hub_file_is_converted_once_and_builds_torchvisions_net(env, register, no_socket,
                                                                     monkeypatch):
    reference = tiny_torchvision()
    data = torch_bytes(reference.state_dict())
    digest = hashlib.sha256(data).hexdigest()
    filename = f"tinyvgg-{digest[:8]}.pth"  # torchvision's naming: a sha256 prefix
    hub = env["torch"] / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / filename).write_bytes(data)
    register(tiny_entry(filename, digest[:8]))
    calls = []
    real = resolve_module.import_weights
    monkeypatch.setattr(resolve_module, "import_weights",
                        lambda *a, **k: calls.append(a) or real(*a, **k))

    path = resolve_weights(NAME)
    assert path == str(converted_path(get_weights_entry(NAME))) == str(env["vggkit"] / "weights" / f"{NAME}.pth")
    assert len(calls) == 1
    state_dict, meta = read_checkpoint(path)
    assert meta["source_sha256"] == digest and meta["source"] == "torchvision"
    mtime = os.stat(path).st_mtime_ns
    assert resolve_weights(NAME) == path and resolve_weights(f"weights_tests.{NAME}") == path
    model = build_vgg("A", weights=NAME).eval()
    assert len(calls) == 1 and os.stat(path).st_mtime_ns == mtime  # converted once
    with torch.no_grad():
        expected = reference(x_batch())
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(model(x_batch()), expected, rtol=1e-5, atol=1e-5)
        by_entry = get_weights_entry(NAME)().eval()  # calling an entry = WEIGHTS.build
        torch.testing.assert_close(by_entry(x_batch()), expected, rtol=1e-5, atol=1e-5)
        # the config contract for tools taking --weights NAME instead of CONFIG CKPT
        cfg = config_for_weights(NAME)
        assert cfg.weights.checkpoint == path and cfg.test_scales == [40]
        assert cfg.preprocess["std"] == [58.395, 57.12, 57.375]
        built, _, _ = build_from_config(cfg, resolve_weights(NAME))
        torch.testing.assert_close(built(x_batch()), expected, rtol=1e-5, atol=1e-5)
    # a local path resolves to itself; a wrong arch or class count is refused by name
    assert resolve_weights(path) == path
    with pytest.raises(WeightsError, match=r"are for arch A .*not D"):
        build_vgg("D", weights=NAME)
    with pytest.raises(WeightsError, match="have 5 classes, not num_classes=7"):
        build_vgg("A", num_classes=7, weights=NAME)
    with pytest.raises(WeightsError, match="need width_mult=0.0625, not 0.5"):
        build_vgg("A", width_mult=0.5, weights=NAME)


def test_hugging_face_cache_and_mismatching_local_file(env, register, no_socket):
    model = build_vgg("A", 5, init="none", **TINY)
    random_weights(model, seed=1)
    from safetensors.torch import save_file
    snapshot = env["hf"] / "hub" / "models--acme--tinyvgg" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    save_file(TimmConverter().export(model.state_dict(), model), snapshot / "model.safetensors")
    digest = hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest()
    register(tiny_entry("model.safetensors", digest, converter="timm",
                        publisher_cache="hf_hub", hf_repo="acme/tinyvgg"))
    with torch.no_grad():
        torch.testing.assert_close(build_vgg("A", weights=NAME).eval()(x_batch()),
                                   model.eval()(x_batch()))
    # a file put by hand in the vggkit cache is checked like a download
    os.remove(resolve_weights(NAME))
    wrong = download_path(get_weights_entry(NAME))
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b"not the weights")
    with pytest.raises(ChecksumError) as err:
        resolve_weights(NAME)
    assert digest in str(err.value) and hashlib.sha256(b"not the weights").hexdigest() in str(err.value)


class Server:
    """A local file server that honours ``Range: bytes=N-`` (unless ``ranges`` is off)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.sent: list[int] = []
        self.cut: dict[str, int] = {}  # path -> bytes to send before dropping the connection
        self.ranges = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data, rng = server.files.get(self.path), self.headers.get("Range")
                server.requests.append((self.path, rng))
                if data is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", rng or "") if server.ranges else None
                start = int(match[1]) if match else 0
                if start >= len(data) and match:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                body = data[start:][:server.cut.pop(self.path, None)]
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(body)
                server.sent.append(len(body))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def served(server, register):
    """The tiny torchvision file on the server, its catalogue entry registered (prefix hash)."""
    reference = tiny_torchvision(seed=2)
    data = torch_bytes(reference.state_dict())
    digest = hashlib.sha256(data).hexdigest()
    filename = f"tinyvgg-{digest[:8]}.pth"
    server.files[f"/models/{filename}"] = data
    register(tiny_entry(filename, digest[:8], server.url(f"/models/{filename}")))
    return {"data": data, "digest": digest, "reference": reference,
            "dest": download_path(get_weights_entry(NAME))}


def test_download_shows_progress_checks_and_converts(env, server, served, capsys):
    path = resolve_weights(NAME)
    assert server.requests == [(f"/models/{served['dest'].name}", None)]
    assert served["dest"].read_bytes() == served["data"]
    assert not served["dest"].with_name(served["dest"].name + ".partial").exists()
    assert read_checkpoint(path)[1]["source_sha256"] == served["digest"]
    err = capsys.readouterr().err
    assert NAME in err and "B/s" in err and "100%" in err  # tqdm: size, rate, ETA


def test_checksum_mismatch_deletes_the_partial_and_names_both_hashes(env, server, served):
    entry = get_weights_entry(NAME)
    expected = "ab" * 32
    with pytest.raises(ChecksumError) as err:
        download(entry.urls, served["dest"], expected, progress=False, label=NAME)
    message = str(err.value)
    assert expected in message and served["digest"] in message and "deleted" in message
    assert not any(served["dest"].parent.iterdir())  # neither the file nor the partial


def test_interrupted_download_resumes_with_a_range_request(env, server, served):
    data, dest = served["data"], served["dest"]
    server.cut[f"/models/{dest.name}"] = 1000
    with pytest.raises(DownloadError, match="interrupted after 1000 of .* resumes"):
        resolve_weights(NAME, progress=False)
    partial = dest.with_name(dest.name + ".partial")
    assert partial.read_bytes() == data[:1000]
    resolve_weights(NAME, progress=False)
    assert server.requests[-1] == (f"/models/{dest.name}", "bytes=1000-")
    assert server.sent == [1000, len(data) - 1000]  # only the rest was sent
    assert dest.read_bytes() == data and not partial.exists()


def test_a_server_ignoring_range_replaces_the_partial(env, server, served):
    dest = served["dest"]
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".partial").write_bytes(b"garbage from elsewhere")
    server.ranges = False
    resolve_weights(NAME, progress=False)
    assert server.requests[-1][1] == "bytes=22-" and dest.read_bytes() == served["data"]


def test_concurrent_resolutions_fetch_and_convert_once(env, server, served, monkeypatch):
    """torchrun's ranks all resolving the same name: one downloads and converts."""
    calls, real = [], resolve_module.import_weights
    monkeypatch.setattr(resolve_module, "import_weights",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    paths: list[str] = []
    threads = [threading.Thread(target=lambda: paths.append(resolve_weights(NAME, progress=False)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(paths) == 3 and len(set(paths)) == 1
    assert len(calls) == 1 and len(server.requests) == 1


@pytest.mark.parametrize("switch", ["VGGKIT_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_opens_no_socket_and_says_what_to_fetch_where(env, server, served, no_socket,
                                                             monkeypatch, switch):
    monkeypatch.setenv(switch, "1")
    entry = get_weights_entry(NAME)
    with pytest.raises(WeightsError) as err:
        resolve_weights(NAME)
    message = str(err.value)
    assert "\n" not in message and switch in message
    assert NAME in message and entry.urls[0] in message and str(served["dest"]) in message
    with pytest.raises(OfflineError):
        download(entry.urls, served["dest"])
    assert server.requests == [] and not served["dest"].parent.exists()
    # the file put where the message says is used without any connection
    served["dest"].parent.mkdir(parents=True)
    served["dest"].write_bytes(served["data"])
    assert resolve_weights(NAME) == str(converted_path(entry))


def test_cli_list_and_get(env, server, served, capsys, monkeypatch):
    assert weights_cli.main(["get", NAME, "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"{NAME}: {converted_path(get_weights_entry(NAME))}"
    assert weights_cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = {ln.split()[0]: ln.rsplit("  ", 1)[-1].strip() for ln in lines[1:-1]}
    assert status[NAME] == "cached" and status["vgg16.torchvision"] == "not cached"
    assert set(weights_names()) <= set(status)
    assert weights_cli.main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[NAME]["status"] == "cached" and rows["vgg16.caffe"]["status"] == "not cached"
    assert rows["vgg16.torchvision"]["preprocess"]["bgr"] is False
    assert rows["vgg16.caffe"]["preprocess"]["bgr"] is True

    monkeypatch.setenv("VGGKIT_OFFLINE", "1")
    assert weights_cli.main(["get", "vgg16.torchvision"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vggkit weights: error: weights "
                                                   "'vgg16.torchvision'")
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in lines[0]
    assert weights_cli.main(["get", "vgg99.nowhere"]) == 2
    assert "unknown weights 'vgg99.nowhere'" in capsys.readouterr().err


def test_builtin_catalogue():
    names = weights_names()
    for model in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
                  "vgg19_bn"):
        entry = get_weights_entry(f"{model}.torchvision")
        assert entry.filename == f"{model}-{entry.sha256}.pth" and len(entry.sha256) == 8
        assert entry.licence == "BSD-3-Clause" and entry.publisher_cache == "torch_hub"
    assert {"vgg16.caffe", "vgg19.caffe", "vgg16.timm", "vgg16.mmpretrain"} <= set(names)
    assert get_weights_entry("vgg16.torchvision").accuracy == {"acc@1": 71.592, "acc@5": 90.382}
    assert get_weights_entry("vgg16.caffe").sha256 is None
    assert get_weights_entry("vgg16.caffe").preprocess["bgr"] is True
    assert get_weights_entry("vgg19.caffe").test_scales == (256, 384, 512)
    assert len(get_weights_entry("vgg16.timm").sha256) == 64
    assert get_weights_entry("vggkit.vgg16_bn.torchvision").arch == "vgg16_bn"
    cfg = config_for_weights("vgg16.caffe")  # pure: nothing is read or fetched
    assert cfg.model.vgg == {"arch": "D", "num_classes": 1000}
    assert cfg.model.data_preprocessor.bgr is True and cfg.test_scales == [256, 384, 512]


def test_features_of_a_folder_in_one_command(env, register, no_socket, tmp_path, capsys):
    """`vggkit extract DIR --weights NAME` with the file in torch.hub's cache and no other step;
    `vggkit.extract_features` gives the same rows; both match torchvision's own fc7."""
    import numpy as np
    from PIL import Image

    import vggkit
    from vggkit.commands import extract
    from vggkit.features.store import load_features
    reference = tiny_torchvision().eval()
    in_torch_hub(env, register, reference)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # 32x32: at Q=32 the fc7 map is 1x1, i.e. torchvision's fc7 on the image
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(photos / f"{i}.png")

    out = tmp_path / "feats"
    assert extract.main([str(photos), "--weights", NAME, "--out", str(out), "--scales", "32",
                         "--no-progress"]) == 0
    fs = load_features(str(out))
    assert fs.ids == ["0.png", "1.png", "2.png"] and fs.classes == ["photos"]
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():
        x = torch.stack([torch.from_numpy(np.asarray(Image.open(photos / f"{i}.png"), np.float32))
                         .permute(2, 0, 1) for i in range(3)])
        x = (x - mean) / std
        fc7 = lambda t: reference.classifier[:5](torch.flatten(reference.avgpool(reference.features(t)), 1))
        expected = (fc7(x) + fc7(x.flip(3))) / 2
        expected = torch.nn.functional.normalize(expected, dim=1).numpy()
    np.testing.assert_allclose(fs.features, expected, atol=1e-5)
    rows = vggkit.extract_features(str(photos), weights=NAME, scales=(32,))
    np.testing.assert_allclose(rows, expected, atol=1e-5)
    assert extract.main(["--weights", NAME]) == 2  # no images: one line naming the fix
    assert "pass --data-root DIR" in capsys.readouterr().err


def test_test_tool_takes_weights_by_name(env, register, no_socket, tmp_path):
    """`vggkit test --weights NAME --data-root DIR`: torchvision's own predictions decide."""
    import numpy as np
    from PIL import Image

    from vggkit.commands import test as test_cli
    reference = tiny_torchvision(seed=1).eval()
    in_torch_hub(env, register, reference)
    rng = np.random.default_rng(1)
    images, labels = [], []
    for c in range(5):  # 5 class folders, 2 images each, 32x32: the centre crop is the image
        (tmp_path / "val" / f"c{c}").mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "val" / f"c{c}" / f"{i}.png")
            images.append(pixels)
            labels.append(c)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    with torch.no_grad():
        x = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() - mean) / std
        logits = reference(x)
    top1 = 100 * float((logits.argmax(1).numpy() != np.array(labels)).mean())
    out = tmp_path / "res.json"
    assert test_cli.main(["--weights", NAME, "--data-root", str(tmp_path / "val"), "--strategy",
                          "center", "--scales", "32", "--workers", "0", "--no-progress",
                          "--out", str(out)]) == 0
    result = json.loads(out.read_text())["models"][0]
    assert result["config"] == f"weights:{NAME}"
    assert result["results"]["center"]["top1_error"] == pytest.approx(top1)
