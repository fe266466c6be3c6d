"""A generated corpus of broken and unusual files: each decodes to RGB or names itself.

The rule under test: any exception a decoder raises while opening or loading a
file makes a ``BadImageError`` naming the file (with the original exception's
type and message); only interrupts and ``MemoryError`` pass through.
"""
from __future__ import annotations

import io
import os
import struct
import types
import zlib

import numpy as np
import pytest
from PIL import Image

from vggkit.data import bad_images
from vggkit.data.datasets import ImageFolder
from helpers import unsupported_dds
from vggkit.data.io import BadImageError, find_bad_image, image_size, read_image


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR (with a correct CRC) claims ``width`` x ``height``."""
    data = bytearray(_encoded(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = data[12:29]  # b'IHDR' + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _animated_gif() -> bytes:
    frames = [Image.new("P", (8, 6), i) for i in (1, 2, 3)]
    frames[0].putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def _palette_with_transparency() -> bytes:
    img = Image.new("P", (6, 4), 0)
    img.putpalette([255, 255, 255, 10, 20, 30] + [0] * 762)
    img.paste(1, (0, 0, 3, 4))
    return _encoded(img, "PNG", transparency=0)


# name -> (bytes, expected size when it decodes, or None when it is a bad image)
CORPUS = {
    "truncated.jpg": (lambda: _encoded(_noise(), "JPEG")[:300], None),
    "truncated.png": (lambda: (lambda b: b[:len(b) // 2])(_encoded(_noise(), "PNG")), None),
    "unimplemented.dds": (unsupported_dds, None),
    "dds_renamed.png": (unsupported_dds, None),
    "text.png": (lambda: b"this is not an image\n", None),
    "empty.jpg": (lambda: b"", None),
    "bomb.png": (lambda: _png_claiming(100_000, 100_000), None),
    "one_pixel.png": (lambda: _encoded(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"), (1, 1)),
    "animated.gif": (_animated_gif, (8, 6)),
    "cmyk.jpg": (lambda: _encoded(Image.new("CMYK", (10, 7), (0, 255, 0, 0)), "JPEG"), (10, 7)),
    "grey16.png": (lambda: _encoded(Image.fromarray(np.full((5, 9), 65535, np.uint16)), "PNG"),
                   (9, 5)),
    "palette_transparent.png": (_palette_with_transparency, (6, 4)),
}


@pytest.fixture()
def corpus(tmp_path):
    paths = {}
    for name, (make, _) in CORPUS.items():
        (tmp_path / name).write_bytes(make())
        paths[name] = tmp_path / name
    return paths


def test_this_pillow_opens_the_dds_but_cannot_decode_it():
    with pytest.raises(NotImplementedError):
        Image.open(io.BytesIO(unsupported_dds())).load()


def test_generated_16_bit_png_is_mode_i16():
    with Image.open(io.BytesIO(CORPUS["grey16.png"][0]())) as img:
        assert img.mode.startswith("I;16")


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_file_decodes_to_rgb_or_names_itself(corpus, name):
    path = corpus[name]
    size = CORPUS[name][1]
    if size is None:
        with pytest.raises(BadImageError) as info:
            read_image(path)
        assert info.value.path == str(path) and str(path) in str(info.value)
        try:  # the header scan obeys the same rule (a truncated body has a good header)
            image_size(path)
        except BadImageError as exc:
            assert exc.path == str(path)
    else:
        img = read_image(path)
        assert img.mode == "RGB" and img.size == size
        assert image_size(path) == size


def test_reason_names_the_decoders_exception(corpus):
    with pytest.raises(BadImageError, match="NotImplementedError: Unimplemented pixel format"):
        read_image(corpus["dds_renamed.png"])
    for name in ("bomb.png", "text.png"):
        with pytest.raises(BadImageError, match=name):
            image_size(corpus[name])


def test_pixel_values_of_the_unusual_modes(corpus):
    assert read_image(corpus["grey16.png"]).getpixel((0, 0)) == (255, 255, 255)  # not clipped
    assert read_image(corpus["one_pixel.png"]).getpixel((0, 0)) == (9, 8, 7)
    # transparent white composited onto black; opaque (10, 20, 30) kept
    pal = read_image(corpus["palette_transparent.png"])
    assert pal.getpixel((0, 0)) == (10, 20, 30) and pal.getpixel((5, 3)) == (0, 0, 0)
    assert read_image(corpus["animated.gif"]).getpixel((0, 0)) == (255, 0, 0)  # first frame


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("tile"), TypeError("x"),
                                   ZeroDivisionError("y")])
def test_any_decoder_exception_becomes_bad_image(tmp_path, monkeypatch, error):
    path = tmp_path / "a.png"
    path.write_bytes(CORPUS["one_pixel.png"][0]())

    def broken(*args, **kwargs):
        raise error
    monkeypatch.setattr(Image.Image, "load", broken)
    with pytest.raises(BadImageError, match=f"a.png.*{type(error).__name__}") as info:
        read_image(path)
    assert info.value.__cause__ is error


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, MemoryError])
def test_interrupts_and_memory_errors_pass_through(tmp_path, monkeypatch, error):
    path = tmp_path / "a.png"
    path.write_bytes(CORPUS["one_pixel.png"][0]())

    def broken(*args, **kwargs):
        raise error()
    monkeypatch.setattr(Image.Image, "load", broken)
    with pytest.raises(error):
        read_image(path)
    monkeypatch.setattr(Image, "open", broken)
    with pytest.raises(error):
        image_size(path)


def test_evaluation_header_scan_sorts_bad_files_last(corpus):
    from vggkit.inference.views import aspect_order
    paths = [str(corpus["dds_renamed.png"]), str(corpus["cmyk.jpg"]), str(corpus["bomb.png"])]
    assert aspect_order(paths) == [1, 0, 2]


def test_find_bad_image_in_chains_and_worker_wrapping(tmp_path):
    bad = BadImageError(tmp_path / "x.png", "NotImplementedError: no")
    try:
        try:
            raise bad
        except BadImageError as exc:
            raise RuntimeError("pipeline failed") from exc
    except RuntimeError as outer:
        assert find_bad_image(outer) is bad
    # torch's DataLoader re-raises a worker's error as RuntimeError(formatted traceback)
    wrapped = RuntimeError("Caught BadImageError in DataLoader worker process 0.\nOriginal "
                           "Traceback (most recent call last):\n  File ...\n"
                           f"vggkit.data.io.BadImageError: bad image file '{tmp_path}/x.png': "
                           "NotImplementedError: no\n")
    found = find_bad_image(wrapped)
    assert found.path == f"{tmp_path}/x.png" and found.reason == "NotImplementedError: no"
    assert find_bad_image(ValueError("unrelated")) is None


@pytest.fixture()
def fresh_log(monkeypatch):
    monkeypatch.delenv(bad_images.ENV_DIR, raising=False)
    monkeypatch.delenv(bad_images.ENV_SPLIT, raising=False)
    bad_images.reset()
    yield
    bad_images.reset()


def test_image_folder_skips_an_undecodable_file_and_names_it(tmp_path, fresh_log, monkeypatch):
    logged = []
    monkeypatch.setattr(bad_images, "_log", logged.append)  # the runner's logger or a warning
    for kind in ("cat", "dog"):
        (tmp_path / kind).mkdir()
        for i in range(2):
            _noise(12, 10, seed=i).save(tmp_path / kind / f"{i}.jpg")
    dds = tmp_path / "cat" / "dds.png"
    dds.write_bytes(unsupported_dds())
    pipeline = [dict(type="LoadScaleCrop", scale=(10, 12), crop=8), dict(type="PackInputs")]
    ds = ImageFolder(str(tmp_path), pipeline=pipeline, bad_images="skip")
    assert len(ds) == 5
    items = [ds[i] for i in range(len(ds))]
    assert all(it["inputs"].shape == (3, 8, 8) for it in items)
    assert logged and all(str(dds) in m and "NotImplementedError" in m for m in logged)
    info = bad_images.summary()
    assert info["count"] == 1 and list(info["files"]) == [str(dds)]
    strict = ImageFolder(str(tmp_path), pipeline=pipeline, bad_images="strict")
    index = [strict.get_data_info(i)["img_path"] for i in range(5)].index(str(dds))
    with pytest.raises(BadImageError, match="dds.png.*NotImplementedError"):
        strict[index]


@pytest.mark.filterwarnings("ignore:vggkit")
def test_summary_counts_distinct_files_per_split(fresh_log):
    for _ in range(3):  # 15 bad files, each retried 3 times
        for i in range(15):
            bad_images.record(f"/data/{i}.jpg", "truncated", split="train")
    bad_images.record("/data/v.jpg", "bomb", split="val")
    train = bad_images.summary("train")
    assert train["count"] == 15 and len(train["files"]) == 15
    assert bad_images.format_summary(train, split="train").startswith(
        "vggkit: skipped 15 bad image(s) in train:")
    assert bad_images.summary("val") == {"count": 1, "files": {"/data/v.jpg": "bomb"}}
    assert bad_images.summary()["count"] == 16
    bad_images.reset("train")
    assert bad_images.summary("train")["count"] == 0 and bad_images.summary("val")["count"] == 1


@pytest.mark.filterwarnings("ignore:vggkit")
def test_summary_hook_reports_each_split_in_its_own_epoch(tmp_path, fresh_log):
    from vggkit.engine.hooks.logging import BadImageSummaryHook
    lines = []
    logger = types.SimpleNamespace(warning=lines.append, info=lines.append)
    runner = types.SimpleNamespace(work_dir=str(tmp_path), logger=logger, epoch=0)
    hook = BadImageSummaryHook()
    hook.before_train(runner)
    for epoch in range(2):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for _ in range(3):  # retries of the same file count once
            bad_images.record("/data/t.jpg", "truncated")
        hook.after_train_epoch(runner)
        runner.epoch = epoch + 1  # mmengine counts the finished epoch before validating
        hook.before_val_epoch(runner)
        bad_images.record("/data/v.jpg", "bomb")
        hook.after_val_epoch(runner)
    train_lines = [l for l in lines if " in train" in l]
    assert [l.splitlines()[0] for l in train_lines] == [
        f"epoch {e}: vggkit: skipped 1 bad image(s) in train:" for e in (1, 2)]
    assert all("/data/v.jpg" not in l for l in train_lines)  # no carry-over from validation
    assert [l.splitlines()[0] for l in lines if " in val" in l] == [
        f"epoch {e}: vggkit: skipped 1 bad image(s) in val:" for e in (1, 2)]
    hook.after_train(runner)
    assert bad_images.ENV_SPLIT not in os.environ
