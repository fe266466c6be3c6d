"""vggkit.data.io: every image mode to RGB, EXIF, 16-bit, bombs, truncation, draft."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from vggkit.data.io import ORIGINAL_SIZE_KEY, BadImageError, read_image


def _px(img: Image.Image, xy=(0, 0)) -> tuple:
    assert img.mode == "RGB"
    return img.getpixel(xy)


def test_greyscale_and_bilevel(tmp_path):
    Image.new("L", (8, 6), 100).save(tmp_path / "l.png")
    Image.new("1", (8, 6), 1).save(tmp_path / "b.png")
    assert _px(read_image(tmp_path / "l.png")) == (100, 100, 100)
    assert _px(read_image(tmp_path / "b.png")) == (255, 255, 255)


def test_cmyk(tmp_path):
    # Pillow's CMYK->RGB: R = (255 - C)(255 - K) / 255 etc., by hand:
    # C=51, M=0, Y=102, K=51 -> (204*204/255, 204, 153*204/255) = (163.2, 204, 122.4)
    Image.new("CMYK", (4, 4), (51, 0, 102, 51)).save(tmp_path / "c.tif")
    r, g, b = _px(read_image(tmp_path / "c.tif"))
    assert abs(r - 163) <= 1 and g == 204 and abs(b - 122) <= 1


def test_palette_with_transparency_composited_on_black(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 1  # green is transparent
    img.save(tmp_path / "p.png", transparency=1)
    out = read_image(tmp_path / "p.png")
    assert _px(out, (0, 0)) == (255, 0, 0)
    assert _px(out, (1, 0)) == (0, 0, 0)


def test_rgba_and_la_premultiplied_on_black(tmp_path):
    Image.new("RGBA", (3, 3), (200, 100, 50, 128)).save(tmp_path / "a.png")
    Image.new("LA", (3, 3), (200, 64)).save(tmp_path / "la.png")
    # 200*128/255 = 100.4, 100*128/255 = 50.2, 50*128/255 = 25.1; 200*64/255 = 50.2
    assert all(abs(a - b) <= 1 for a, b in zip(_px(read_image(tmp_path / "a.png")),
                                                (100, 50, 25)))
    assert all(abs(a - 50) <= 1 for a in _px(read_image(tmp_path / "la.png")))
    # a fully transparent pixel shows no colour, whatever the file stores under it
    Image.new("RGBA", (2, 2), (255, 255, 255, 0)).save(tmp_path / "t.png")
    assert _px(read_image(tmp_path / "t.png")) == (0, 0, 0)
    white = read_image(tmp_path / "t.png", background=(255, 255, 255))
    assert _px(white) == (255, 255, 255)


def test_16bit_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = read_image(tmp_path / "g16.png")
    # v * 255 / 65535: 0, 3.89, 127.5, 255 (a clipping conversion gives 255 for 1000)
    assert [_px(out, (x, 0))[0] for x in range(4)] == [0, 4, 128, 255]


def test_exif_orientation_rotates(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "r.jpg")
    assert out.size == (20, 40)
    top, bottom = _px(out, (10, 5)), _px(out, (10, 35))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert out.info[ORIGINAL_SIZE_KEY] == (20, 40)


@pytest.mark.parametrize("size", [(20, 20), (15, 10)])  # > 2x the limit (error), 1-2x (warning)
def test_decompression_bomb_refused(tmp_path, monkeypatch, size):
    Image.new("RGB", size).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(BadImageError, match="bomb.png.*decompression bomb"):
        read_image(tmp_path / "bomb.png")


def test_truncated_missing_and_garbage(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(BadImageError, match="cut.jpg") as info:
        read_image(tmp_path / "cut.jpg")
    assert isinstance(info.value, OSError) and info.value.path.endswith("cut.jpg")
    assert read_image(tmp_path / "cut.jpg", strict=False).size == (64, 64)
    with pytest.raises(BadImageError, match="junk.jpg"):
        read_image(tmp_path / "junk.jpg")
    with pytest.raises(BadImageError, match="nothere.jpg.*not found"):
        read_image(tmp_path / "nothere.jpg")
    err = pickle.loads(pickle.dumps(BadImageError("/x/y.jpg", "why")))
    assert err.path == "/x/y.jpg" and "why" in str(err)


def test_draft_never_below_min_side(tmp_path):
    Image.new("RGB", (1600, 1200), (10, 200, 30)).save(tmp_path / "big.jpg", quality=90)
    Image.new("RGB", (1600, 1200), (10, 200, 30)).save(tmp_path / "big.png")
    # libjpeg reduces by 1/2, 1/4, 1/8: the largest keeping 1200/f >= min_side
    assert read_image(tmp_path / "big.jpg", min_side=256).size == (400, 300)
    assert read_image(tmp_path / "big.jpg", min_side=300).size == (400, 300)
    assert read_image(tmp_path / "big.jpg", min_side=301).size == (800, 600)
    assert read_image(tmp_path / "big.jpg", min_side=100).size == (200, 150)
    assert read_image(tmp_path / "big.jpg", min_side=700).size == (1600, 1200)
    small = read_image(tmp_path / "big.jpg", min_side=256)
    assert small.info[ORIGINAL_SIZE_KEY] == (1600, 1200)
    assert all(abs(a - b) <= 3 for a, b in zip(_px(small, (5, 5)), (10, 200, 30)))
    assert read_image(tmp_path / "big.png", min_side=256).size == (1600, 1200)
