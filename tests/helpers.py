"""Data writers, plugins and runners shared by several test modules (plain code; the
fixtures built on them are in conftest.py)."""
from __future__ import annotations

import json
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
            "from vggkit.plugins import register_plugin\n"
            "from vggkit.commands import extract as extract_tool\n"
            "from vggkit.features import runner\n"
            "register_plugin(FolderTaskPlugin(), 'features_tests')\n"
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


def run_train(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``python tools/train.py ARGS`` in a subprocess (fresh mmengine global state)."""
    return subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), *args], env=env(),
                          cwd=kw.pop("cwd", None), capture_output=True, text=True,
                          timeout=timeout, **kw)


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

    from vggkit.models import build_vgg
    torch.manual_seed(0)
    return build_vgg("A", num_classes=num_classes, width_mult=1 / 16, fc_width=32,
                     input_size=32, init=init).eval()
