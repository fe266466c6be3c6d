"""Box annotations: PASCAL-style XML (ILSVRC CLS-LOC), and a generic CSV or JSON table.

Every reader returns :class:`Record` s, one per image, and every fault is an
:class:`AnnotationError` naming the file (and line, object or record) and the
fix: an XML without boxes, a box outside its image, a box of zero area, an
unknown class name, a missing column or a value that is not a number.

Coordinates are continuous pixels, ``xmin <= x <= xmax`` with ``0 <= xmin``
and ``xmax <= width``. ILSVRC's XMLs number pixels from 0 and their boxes fit
this rule; a 1-based box ending on the last pixel column (``xmax == width``)
is inside too.
"""
from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from vggkit.errors import UserError, plural

__all__ = ["AnnotationError", "Record", "read_xml", "read_table", "check_box", "label_records",
           "TABLE_COLUMNS"]

#: columns of the generic CSV (header row required; any order) and keys of its JSON records
TABLE_COLUMNS = ("path", "class", "xmin", "ymin", "xmax", "ymax")


class AnnotationError(UserError):
    """A box annotation that cannot be used; the message names the file and the fault."""


@dataclass
class Record:
    """One image's boxes as read from an annotation.

    Attributes:
        path: the image, relative to the dataset's image folder (or absolute).
        names: class name of each box.
        boxes: K x 4 ``xyxy`` pixels.
        size: ``(width, height)`` the boxes refer to, if the annotation says.
        where: where each box was read (file and line/object), for messages.
    """

    path: str
    names: list[str] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    size: tuple[int, int] | None = None
    where: list[str] = field(default_factory=list)

    def add(self, name: str, box: Sequence[float], where: str) -> None:
        self.names.append(name)
        self.boxes.append([float(v) for v in box])
        self.where.append(where)


def check_box(box: Sequence[float], size: tuple[int, int] | None, where: str,
              clip: bool = False) -> list[float]:
    """The box, checked: positive area, inside a ``size = (width, height)`` image.

    Raises:
        AnnotationError: naming ``where`` and the fault. ``clip=True`` clips
        a box that leaves the image instead (it must still overlap it).
    """
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    if not all(np.isfinite([xmin, ymin, xmax, ymax])):
        raise AnnotationError(f"{where}: box {tuple(box)} has a coordinate that is not finite")
    if xmax <= xmin or ymax <= ymin:
        raise AnnotationError(
            f"{where}: box (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g}) has zero "
            f"area ({'xmax <= xmin' if xmax <= xmin else 'ymax <= ymin'}); fix or remove it")
    if size is None:
        return [xmin, ymin, xmax, ymax]
    width, height = size
    out = [f"{k} {v:g} {op} {lim}" for k, v, op, lim, bad in (
        ("xmin", xmin, "<", 0, xmin < 0), ("ymin", ymin, "<", 0, ymin < 0),
        ("xmax", xmax, ">", f"width {width}", xmax > width),
        ("ymax", ymax, ">", f"height {height}", ymax > height)) if bad]
    if not out:
        return [xmin, ymin, xmax, ymax]
    if clip and xmin < width and ymin < height and xmax > 0 and ymax > 0:
        return [max(xmin, 0.0), max(ymin, 0.0), min(xmax, float(width)), min(ymax, float(height))]
    raise AnnotationError(
        f"{where}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {width}x{height} "
        f"image ({', '.join(out)}); fix the box, or pass clip_boxes=True to the dataset to clip "
        "boxes to their image")


def _text(node: ET.Element, tag: str, where: str) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise AnnotationError(f"{where}: missing <{tag}>")
    return found.text.strip()


def _number(text: str, what: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} '{text}' is not a number") from None


def read_xml(path: str, image_path: str | None = None, clip: bool = False) -> Record:
    """One PASCAL-style XML (``<annotation><filename>, <size>, <object><name>, <bndbox>``).

    ``image_path`` overrides ``<filename>`` (ILSVRC's often lacks the suffix).
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AnnotationError(f"annotation '{path}' cannot be read as XML: {exc}") from None
    size_node = root.find("size")
    size = None
    if size_node is not None:
        size = tuple(int(_number(_text(size_node, k, f"annotation '{path}' <size>"), k, path))
                     for k in ("width", "height"))
        if min(size) <= 0:  # some tools write 0 x 0 when they do not know
            size = None
    record = Record(image_path or _text(root, "filename", f"annotation '{path}'"), size=size)
    for i, obj in enumerate(root.iter("object"), 1):
        where = f"annotation '{path}' object {i}"
        name, box_node = _text(obj, "name", where), obj.find("bndbox")
        if box_node is None:
            raise AnnotationError(f"{where} ({name}): missing <bndbox>")
        box = [_number(_text(box_node, k, where), k, where) for k in TABLE_COLUMNS[2:]]
        where = f"{where} ({name})"
        record.add(name, check_box(box, size, where, clip), where)
    if not record.boxes:
        raise AnnotationError(f"annotation '{path}' has no <object> with a <bndbox>: an image "
                              "without boxes can neither train nor test localisation; remove "
                              "the file (or its image) from the set")
    return record


def _table_rows(path: str) -> tuple[list[tuple[str, dict]], list[str] | None]:
    """``([(where, row)], classes or None)`` of a CSV or JSON box table."""
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise AnnotationError(f"box file '{path}' cannot be read as JSON: {exc}") from None
        classes = None
        if isinstance(data, dict):
            classes, data = data.get("classes"), data.get("boxes")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise AnnotationError(f"box file '{path}': expected a list of objects with keys "
                                  f"{', '.join(TABLE_COLUMNS)} (or {{'classes': [...], "
                                  "'boxes': [...]}})")
        return [(f"box file '{path}' record {i}", r) for i, r in enumerate(data, 1)], classes
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in TABLE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(f"box file '{path}': the header row lacks column(s) "
                                      f"{', '.join(missing)}; expected {','.join(TABLE_COLUMNS)}")
            return [(f"box file '{path}' line {reader.line_num}", dict(r)) for r in reader], None
    except OSError as exc:
        raise AnnotationError(f"box file '{path}' cannot be read: {exc}") from None


def read_table(path: str, size_of: Callable[[str], tuple[int, int]] | None = None,
               clip: bool = False) -> tuple[list[Record], list[str] | None]:
    """A generic box table: CSV ``path,class,xmin,ymin,xmax,ymax`` (one row per box) or JSON.

    Args:
        path: the ``.csv`` or ``.json`` file.
        size_of: ``image path -> (width, height)``, to check boxes against
            their image (called once per image).
        clip: clip boxes leaving their image instead of raising.

    Returns:
        The records in first-appearance order, and the JSON's ``classes`` if given.
    """
    rows, classes = _table_rows(path)
    records: dict[str, Record] = {}
    for where, row in rows:
        missing = [c for c in TABLE_COLUMNS if row.get(c) in (None, "")]
        if missing:
            raise AnnotationError(f"{where}: no value for {', '.join(missing)}")
        image = str(row["path"])
        if image not in records:
            records[image] = Record(image, size=size_of(image) if size_of else None)
        box = [_number(str(row[k]), k, where) for k in TABLE_COLUMNS[2:]]
        name = str(row["class"])
        records[image].add(name, check_box(box, records[image].size, f"{where} ({name})", clip),
                           f"{where} ({name})")
    if not records:
        raise AnnotationError(f"box file '{path}' has no boxes")
    return list(records.values()), classes


def label_records(records: Iterable[Record], classes: Sequence[str]) -> list[np.ndarray]:
    """Class index of every box; an unknown class name is an :class:`AnnotationError`."""
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for record in records:
        for name, where in zip(record.names, record.where):
            if name not in index:
                shown = ", ".join(list(classes)[:5]) + (", ..." if len(classes) > 5 else "")
                raise AnnotationError(f"{where}: class '{name}' is not one of the "
                                      f"{plural(len(classes), 'class')} ({shown}); fix the name or add "
                                      "it to the dataset's classes")
        out.append(np.array([index[n] for n in record.names], dtype=np.int64))
    return out
