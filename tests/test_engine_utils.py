"""The test helpers' image folders are real, decodable JPEGs of the promised sizes."""
from __future__ import annotations

from PIL import Image

from helpers import CLASSES, make_image_folder


def test_make_image_folder_writes_decodable_jpegs(tmp_path):
    root = make_image_folder(tmp_path, per_class=2)
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 2 * len(CLASSES)
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and min(im.size) >= 48
