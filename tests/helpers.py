"""Data writers, plugins and runners shared by several test modules (plain code; the
fixtures built on them are in conftest.py)."""
from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from vggkit.evaluation.strategies import CropStrategy, grid_offsets
from vggkit.hookspecs import hookimpl
from vggkit.transfer.task import TaskData, TransferTask


def random_weights(model, seed: int = 0):
    """Materialise ``model`` (possibly on the meta device) with random weights, in eval mode.

    Weights ~ N(0, 2/fan_in) (He scaling keeps deep activations O(1), so compared
    logits are not vanishingly small), biases ~ U(-0.1, 0.1), BN running
    variances ~ U(0.5, 1.5). Building on ``torch.device('meta')`` and filling
    here is several times faster than PyTorch's default initialisation.
    """
    import torch
    if any(t.is_meta for t in model.state_dict().values()):
        model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.zero_()
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=g)
            elif tensor.ndim > 1:
                tensor.normal_(0, math.sqrt(2 / tensor[0].numel()), generator=g)
            else:
                tensor.uniform_(-0.1, 0.1, generator=g)
    return model.eval()


def forget_runners() -> None:
    """Drop the loggers of the runners a test built. A command runs one runner per
    process; here mmengine's global loggers outlive a test, and one reused by a later
    runner of the same name (its timestamp) writes to a stream pytest has since closed
    (a '--- Logging error ---' traceback)."""
    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):  # noqa: SLF001 - no public reset
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    MMLogger._instance_dict.clear()  # noqa: SLF001


def train_in_process(config, **options):
    """Train ``config`` as ``vggkit train`` does (:func:`vggkit.engine.train.train`), in this
    process; the trained runner."""
    from vggkit.engine.train import train
    try:
        return train(str(config), **options)
    finally:
        forget_runners()


def register_plugin(plugin, name: str):
    """Register a plugin object in this process, as an installed one is; its record."""
    from vggkit.plugins import PluginInfo, load_plugins
    info = PluginInfo(name)
    load_plugins().add(plugin, info)
    return info


def write_store(path, X, labels, ids, subsets, classes, task):
    """A complete feature store as tools/extract_features.py leaves it (manifest + arrays)."""
    path.mkdir()
    np.save(path / "features.npy", X.astype(np.float32))
    np.save(path / "labels.npy", labels)
    manifest = {"format": "vggkit-features/1", "status": "complete", "features_file": "features.npy",
                "labels_file": "labels.npy", "ids": ids, "subsets": subsets, "classes": classes,
                "settings": {"task": task}}
    (path / "manifest.json").write_text(json.dumps(manifest))


def extraction_script(body: str) -> str:
    """Python source running ``tools/extract_features.py`` on argv in a fresh process.

    It registers the test task of ``test_features_store`` and binds
    ``real = runner.FeatureStore.write_shard`` so ``body`` can wrap shard
    writes (to kill or pause the process at a chosen shard).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    return ("import os, sys\n"
            f"sys.path.insert(0, {here!r})\n"
            "from helpers import FolderTaskPlugin\n"
            "from vggkit.plugins import PluginInfo, load_plugins\n"
            "from vggkit.commands import extract as extract_tool\n"
            "from vggkit.features import runner\n"
            "load_plugins().add(FolderTaskPlugin(), PluginInfo('features_tests'))\n"
            "real = runner.FeatureStore.write_shard\n"
            f"{body}\n"
            "sys.exit(extract_tool.main(sys.argv[1:]))\n")


REPO = Path(__file__).resolve().parents[1]
CLASSES = ("red_hstripes", "green_vstripes", "blue_disc")


def draw(kind: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """One image of a class: coloured stripes or a disc on noise, random phase/position."""
    img = rng.integers(0, 60, size=(h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    period = int(rng.integers(6, 10))
    phase = int(rng.integers(0, period))
    if kind == "red_hstripes":
        mask, colour = ((yy + phase) // (period // 2)) % 2 == 0, (230, 40, 40)
    elif kind == "green_vstripes":
        mask, colour = ((xx + phase) // (period // 2)) % 2 == 0, (40, 220, 40)
    else:
        cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
        mask, colour = (yy - cy) ** 2 + (xx - cx) ** 2 < (min(h, w) // 3) ** 2, (40, 60, 230)
    img[mask] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 12, seed: int = 0,
                      classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/<i>.jpg``: real JPEG files, sizes around 64 x 48 (both orientations)."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(rng.integers(56, 90)), int(rng.integers(48, 80))
            Image.fromarray(draw(kind, rng, w, h)).save(root / kind / f"{i:03d}.jpg", quality=92)
    return root


def make_split_folder(root: Path, train: int = 12, val: int = 6) -> Path:
    """``root/train/<class>/`` and ``root/val/<class>/`` with different images."""
    make_image_folder(root / "train", train, seed=0)
    make_image_folder(root / "val", val, seed=1)
    return root


def env(**extra: str) -> dict[str, str]:
    """Environment of a training subprocess: vggkit importable, one thread per process."""
    out = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    out.update(extra)
    return out


# -- tools/*.py in a fresh process, without paying the imports each time ---------------------
# A tool's process spends 5-10 s importing torch, mmengine and vggkit before it does anything
# (a one-epoch tools/train.py run on 6 images: 14 s, 4.3 s from the zygote). A "zygote"
# process imports them once and nothing else (no runner, no plugin loading, no torch
# computation: no state a fresh process would not have), then forks one child per tool run.
# Each child is a new process with its own pid, session, environment, cwd, stdout/stderr
# files, fresh random seeds (python, numpy, torch) and mmengine global state as fresh as a
# new interpreter's; it runs the tool as ``python tools/X.py ARGS`` would (``__main__``,
# sys.argv, exit code, traceback, atexit). VGGKIT_TEST_ZYGOTE=0 runs plain subprocesses.
_ZYGOTE_PRELOAD = (
    "torch", "numpy", "PIL.Image", "mmengine.runner", "mmengine.hooks", "mmengine.model",
    "mmengine.optim", "mmengine.dataset", "mmengine.evaluator", "mmengine.visualization",
    "matplotlib.figure", "matplotlib.patches", "vggkit.commands.train",
    "vggkit.commands.localise", "vggkit.commands.test", "vggkit.engine.train",
    "vggkit.engine.classifier",
    "vggkit.engine.hooks.checkpoint", "vggkit.engine.hooks.curves", "vggkit.engine.hooks.guard",
    "vggkit.engine.hooks.health", "vggkit.engine.hooks.layer_stats",
    "vggkit.engine.hooks.logging", "vggkit.engine.hooks.resume", "vggkit.data.datasets",
    "vggkit.data.transforms", "vggkit.data.lighting", "vggkit.data.packing",
    "vggkit.data.data_preprocessor", "vggkit.evaluation.metrics", "vggkit.models.vgg",
    "vggkit.localisation.model", "vggkit.localisation.datasets",
    "vggkit.localisation.transforms", "vggkit.localisation.metrics",
    "vggkit.localisation.candidates", "vggkit.localisation.protocol",
)

_ZYGOTE_SOURCE = r'''
import atexit, importlib, json, os, runpy, select, signal, sys, traceback
replies = os.fdopen(int(sys.argv[1]), "w", buffering=1)
for name in sys.argv[2].split(","):
    try:  # a module renamed or gone is simply imported (or not) by the tool itself
        importlib.import_module(name)
    except Exception:
        pass
try:  # what the runner's environment report imports (cv2, torchvision, ...)
    from mmengine.utils.dl_utils import collect_env
    collect_env()
except Exception:
    pass
sys.stdout.flush()
sys.stderr.flush()


def child(req):
    code = 1
    try:
        os.setsid()  # a timeout kills the tool and its dataloader workers together
        replies.close()
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            new = os.open(path, flags, 0o644)
            os.dup2(new, fd)
            os.close(new)
        sys.stdin = sys.__stdin__ = open(0, closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False,
                                           errors="backslashreplace")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(req["env"])
        if req["cwd"]:
            os.chdir(req["cwd"])
        import random  # fresh entropy, as a new interpreter has
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        if "torch" in sys.modules:
            sys.modules["torch"].default_generator.seed()
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit() and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
        script = req["argv"][0]
        sys.argv = list(req["argv"])
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException as exc:  # as python prints it: from the script's frame on
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != script:
                tb = tb.tb_next
            traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
            code = 1
        try:
            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    finally:
        os._exit(code & 0xFF)


signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the tests' to handle: they close us
children = {}
pending = b""
while True:
    ready, _, _ = select.select([0], [], [], 0.05 if children else None)
    if ready:
        data = os.read(0, 65536)
        if not data:  # the tests ended (or died): so do the runs nobody waits for any more
            for pid in children:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            break
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            req = json.loads(line)
            pid = os.fork()
            if pid == 0:
                child(req)
            children[pid] = req["id"]
            replies.write(json.dumps({"id": req["id"], "pid": pid}) + "\n")
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        replies.write(json.dumps({"id": children.pop(pid),
                                  "rc": os.waitstatus_to_exitcode(status)}) + "\n")
'''


class _Zygote:
    """The parent's end: start a tool run, wait for its exit code."""

    def __init__(self) -> None:
        import tempfile
        self.owner = os.getpid()
        self.dir = tempfile.mkdtemp(prefix="vggkit-test-zygote-")
        read, write = os.pipe()
        self.log = open(os.path.join(self.dir, "zygote.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE_SOURCE, str(write), ",".join(_ZYGOTE_PRELOAD)],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, env=env(),
            pass_fds=(write,), cwd=str(REPO))
        os.close(write)
        self.replies, self.buffer, self.seen = read, b"", {}
        self.count = 0

    def start(self, argv: list[str], environ: dict, cwd) -> dict:
        self.count += 1
        run = {"id": self.count, "argv": argv,
               "stdout": os.path.join(self.dir, f"{self.count}.out"),
               "stderr": os.path.join(self.dir, f"{self.count}.err")}
        request = dict(run, env=environ, cwd=str(cwd) if cwd is not None else os.getcwd())
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()  # no wait: the zygote may still be importing
        return run

    def _reply(self, run_id: int, key: str, timeout: float | None):
        import select
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while (run_id, key) not in self.seen:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            ready, _, _ = select.select([self.replies], [], [], left)
            if not ready:
                continue
            data = os.read(self.replies, 65536)
            if not data:
                raise RuntimeError("the test zygote process died; its log: "
                                   f"{os.path.join(self.dir, 'zygote.log')}")
            self.buffer += data
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                reply = json.loads(line)
                for k in ("pid", "rc"):
                    if k in reply:
                        self.seen[(reply["id"], k)] = reply[k]
        if key == "rc":
            self.seen.pop((run_id, "pid"), None)
        return self.seen.pop((run_id, key))

    def wait(self, run: dict, timeout: float | None) -> subprocess.CompletedProcess:
        import signal
        rc = self._reply(run["id"], "rc", timeout)
        if rc is None:
            try:
                os.killpg(self._reply(run["id"], "pid", None), signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reply(run["id"], "rc", None)
        out, err = (_read_text(run[k]) for k in ("stdout", "stderr"))
        for k in ("stdout", "stderr"):
            os.unlink(run[k])
        if rc is None:
            raise subprocess.TimeoutExpired([sys.executable, *run["argv"]], timeout, out, err)
        return subprocess.CompletedProcess([sys.executable, *run["argv"]], rc, out, err)

    def close(self) -> None:
        import shutil
        if self.replies is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        os.close(self.replies)
        self.replies = None
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_text(path: str) -> str:
    with open(path, encoding=sys.getdefaultencoding(), errors="replace") as f:
        return f.read()


_ZYGOTE: _Zygote | None = None


def zygote() -> _Zygote | None:
    """This process's zygote, started on first use (None when VGGKIT_TEST_ZYGOTE=0)."""
    global _ZYGOTE
    if os.environ.get("VGGKIT_TEST_ZYGOTE", "1") == "0" or not hasattr(os, "fork"):
        return None
    if _ZYGOTE is None or _ZYGOTE.owner != os.getpid() or _ZYGOTE.proc.poll() is not None:
        import atexit
        _ZYGOTE = _Zygote()
        atexit.register(_ZYGOTE.close)
    return _ZYGOTE


class ToolRun:
    """``python tools/TOOL ARGS`` started now; :meth:`wait` gives its CompletedProcess."""

    def __init__(self, tool: str, args: list[str], timeout: float = 300, cwd=None,
                 environ: dict | None = None) -> None:
        self.argv = [str(REPO / "tools" / tool), *map(str, args)]
        self.timeout, self.cwd, self.environ = timeout, cwd, environ or env()
        self.result: subprocess.CompletedProcess | None = None
        self.zygote = zygote()
        if self.zygote is not None:
            self.run = self.zygote.start(self.argv, self.environ, cwd)
        else:
            self.proc = subprocess.Popen([sys.executable, *self.argv], env=self.environ, cwd=cwd,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)

    def wait(self) -> subprocess.CompletedProcess:
        """Its end (the same object on every call)."""
        if self.result is None:
            self.result = self._wait()
        return self.result

    def _wait(self) -> subprocess.CompletedProcess:
        if self.zygote is not None:
            return self.zygote.wait(self.run, self.timeout)
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise subprocess.TimeoutExpired(self.proc.args, self.timeout, out, err)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def run_tool(tool: str, args: list[str], timeout: float = 300, cwd=None
             ) -> subprocess.CompletedProcess:
    """``python tools/TOOL ARGS`` in a fresh process, to its end."""
    return ToolRun(tool, args, timeout, cwd).wait()


def run_train(args: list[str], timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    """``python tools/train.py ARGS`` in a fresh process (fresh mmengine global state)."""
    return run_tool("train.py", args, timeout, cwd)


def unsupported_dds(fourcc: bytes = b"XXXX") -> bytes:
    """A 4x4 DDS whose FourCC Pillow opens but cannot decode (NotImplementedError)."""
    header = struct.pack("<4sIIIIIII", b"DDS ", 124, 0x1007, 4, 4, 0, 0, 0) + bytes(44)
    pixel_format = struct.pack("<II4sIIIII", 32, 0x4, fourcc, 0, 0, 0, 0, 0)  # DDPF_FOURCC
    caps = struct.pack("<IIIII", 0x1000, 0, 0, 0, 0)
    return header + pixel_format + caps + bytes(64)


FOLDER_CLASSES = ("cat", "dog")


class FolderTask(TransferTask):
    """Minimal task for the tests: ROOT/<class>/*.jpg, sorted."""

    name = "features_test_folder"
    default_aggregate = "stack"
    default_scales = (32, 48)

    def scan(self, data_root: str) -> TaskData:
        paths, labels = [], []
        for c, cls in enumerate(FOLDER_CLASSES):
            for f in sorted(os.listdir(os.path.join(data_root, cls))):
                paths.append(os.path.join(data_root, cls, f))
                labels.append(c)
        ids = [os.path.relpath(p, data_root) for p in paths]
        return TaskData(ids=ids, paths=paths, labels=np.array(labels), classes=list(FOLDER_CLASSES),
                        subsets=["trainval" if i % 2 else "test" for i in range(len(ids))],
                        root=data_root)


class FolderTaskPlugin:
    """Registers :class:`FolderTask` as a third-party plugin would."""

    @hookimpl
    def vggkit_register_transfer_tasks(self, register):
        register(FolderTask, name=FolderTask.name)


def small_jpeg(path, w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    img.save(path, quality=95)
    return img


def run_extract(setup: dict, out, *extra: str, nets: str = "d") -> int:
    """``vggkit extract`` of the FolderTask images of ``feature_setup`` into ``out``."""
    from vggkit.commands import extract
    pairs = [p for n in nets for p in setup[n]]
    return extract.main([*pairs, "--task", FolderTask.name, "--data-root",
                              str(setup["data"]), "--out", str(out), "--no-progress", *extra])


class TenCrop(CropStrategy):
    """The AlexNet 10-crop protocol: four corners and the centre, with flips."""

    default_flip = True

    def offsets(self, height, width, crop):
        t, l = grid_offsets(height, crop, 3), grid_offsets(width, crop, 3)
        return [(t[0], l[0]), (t[0], l[2]), (t[2], l[0]), (t[2], l[2]), (t[1], l[1])]


class TenCropPlugin:
    """A third-party plugin object, as an entry point would provide it."""

    @staticmethod
    @hookimpl
    def vggkit_register_eval_strategies(register):
        register(TenCrop, "10crop")


VOC_ACTIONS = ("jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse",
               "running", "takingphoto", "usingcomputer", "walking")


def voc_action_xml(size: tuple[int, int] | None, objects: list[dict]) -> str:
    """An ``Annotations/<id>.xml`` of VOC-2012 action, as the devkit writes it.

    Each object: ``name`` (default 'person'), ``box`` (xmin, ymin, xmax, ymax; 1-based,
    inclusive) or None, ``actions``: the set of actions marked 1 (``other`` allowed; every
    other action of the devkit is written as 0), or None for no ``<actions>`` element.
    """
    parts = ["<annotation><folder>VOC2012</folder>"]
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height>"
                     "<depth>3</depth></size>")
    for obj in objects:
        parts.append(f"<object><name>{obj.get('name', 'person')}</name>")
        if obj.get("actions") is not None:
            marked = obj["actions"]
            names = sorted(set(VOC_ACTIONS) | {"other"} | set(marked))
            parts.append("<actions>" + "".join(f"<{a}>{int(a in marked)}</{a}>" for a in names)
                         + "</actions>")
        if obj.get("box") is not None:
            x0, y0, x1, y1 = obj["box"]
            parts.append(f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                         f"<ymax>{y1}</ymax></bndbox>")
        parts.append("</object>")
    return "".join(parts) + "</annotation>\n"


def make_voc_action(root: Path, class_files: bool = True, test_labels: bool = True,
                    seed: int = 0) -> dict:
    """A tiny VOC-2012 Action devkit under ``root/VOCdevkit/VOC2012``: real JPEGs, XML, ImageSets.

    Every action has two persons in trainval and one in test, plus 'other' persons
    (negatives of every class); a person's box is filled with its action's colour on a
    noisy background. Some images hold two persons; one holds a horse as object 1, so
    its person is object 2 (the devkit numbers every object). Returns ``base`` and
    ``instances``: split -> list of (image id, person index, VOC box, action).
    """
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Action"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    colours = {a: rng.integers(0, 256, 3) for a in (*VOC_ACTIONS, "other")}
    plan = {"trainval": [*VOC_ACTIONS, *VOC_ACTIONS, "other", "other"],
            "test": [*VOC_ACTIONS, "other"]}
    instances: dict[str, list] = {}
    number = 0
    for split, actions in plan.items():
        instances[split] = []
        k = 0
        while k < len(actions):
            number += 1
            image_id = f"2012_{number:06d}"
            w, h = int(rng.integers(60, 80)), int(rng.integers(48, 64))
            pixels = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            objects: list[dict] = []
            if number == 3:
                objects.append({"name": "horse", "box": (2, 2, 20, 20), "actions": None})
            people = 2 if number % 2 == 0 and k + 1 < len(actions) else 1
            for j in range(people):
                action = actions[k + j]
                left = 2 + j * (w // 2)  # two people side by side
                x0, y0 = left + int(rng.integers(0, 4)), int(rng.integers(2, 8))
                x1, y1 = x0 + int(rng.integers(14, w // 2 - 6)), y0 + int(rng.integers(20, h - 14))
                pixels[y0 - 1:y1, x0 - 1:x1] = colours[action]
                objects.append({"box": (x0, y0, x1, y1),
                                "actions": {action} if split == "trainval" or test_labels else None})
                instances[split].append((image_id, len(objects), (x0, y0, x1, y1), action))
            k += people
            Image.fromarray(pixels).save(base / "JPEGImages" / f"{image_id}.jpg", quality=95)
            (base / "Annotations" / f"{image_id}.xml").write_text(voc_action_xml((w, h), objects))
        sets = base / "ImageSets" / "Action"
        (sets / f"{split}.txt").write_text("".join(f"{i} {p}\n" for i, p, _, _ in instances[split]))
        if class_files and (split == "trainval" or test_labels):
            for a in VOC_ACTIONS:
                (sets / f"{a}_{split}.txt").write_text("".join(
                    f"{i} {p} {1 if act == a else -1:2d}\n" for i, p, _, act in instances[split]))
    return {"base": base, "instances": instances}


def tiny_vgg(num_classes: int, init: str = "kaiming"):
    """Net A at 1/16 width with 32-wide FC layers and 32-pixel crops, seeded, in eval mode:
    a full VGG graph whose forward takes milliseconds on one thread."""
    import torch

    from vggkit.factory import build_vgg
    torch.manual_seed(0)
    return build_vgg("A", num_classes=num_classes, width_mult=1 / 16, fc_width=32,
                     input_size=32, init=init).eval()


def random_image(h: int, w: int, seed: int = 0) -> Image.Image:
    """An RGB image of uniform random pixels."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def views_at(images, scales) -> dict[int, list]:
    """Each image's uint8 view at every scale Q, gathered per Q (what a strategy takes)."""
    from vggkit.inference.views import image_views
    views: dict[int, list] = {}
    for img in images:
        for q, t in image_views(img, scales).items():
            views.setdefault(q, []).append(t)
    return views
