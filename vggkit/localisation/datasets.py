"""Localisation datasets: images with boxes (Appendix A).

Each sample's data info holds ``img_path``, ``gt_label`` (the class of its
first box: ILSVRC CLS-LOC images show one class), ``gt_bboxes`` (K x 4
``xyxy`` pixels of the image file), ``gt_bboxes_labels`` (K class indices)
and ``ann_size`` (the ``(width, height)`` the boxes refer to, or None).
Bad images follow :mod:`vggkit.data.datasets`' policy; bad annotations raise
:class:`~vggkit.localisation.annotations.AnnotationError` at once.
"""
from __future__ import annotations

import abc

import os
from typing import Any, Sequence

import numpy as np

from vggkit.data.datasets import DatasetLayoutError, ImageDatasetBase, read_classes
from vggkit.data.filelist import list_class_dirs
from vggkit.data.io import image_size
from vggkit.localisation.annotations import (TABLE_COLUMNS, AnnotationError, Record,
                                             label_records, read_table, read_xml)

__all__ = ["ILSVRCLocalisation", "BoxList", "ILSVRC_LAYOUT", "BOX_LIST_LAYOUT"]

ILSVRC_LAYOUT = """\
  DATA_ROOT/Data/CLS-LOC/{train,val}/...JPEG + DATA_ROOT/Annotations/CLS-LOC/{train,val}/...xml
      (the LOC_* download: train/n01440764/n01440764_10026.{JPEG,xml},
       val/ILSVRC2012_val_00000001.{JPEG,xml})
  or DATA_ROOT/{train,val}/...JPEG + DATA_ROOT/bbox/{train,val}/...xml   (ILSVRC-2012 bbox tarballs)
  one XML per image, same relative path: <annotation><size><width>..</size>
      <object><name>n01751748</name><bndbox><xmin>..<ymin>..<xmax>..<ymax>..</bndbox></object>
  classes: LOC_synset_mapping.txt in DATA_ROOT (first word per line), else the sorted synset
  folders of the train images, else the sorted names in the XMLs (or pass classes=...)"""

BOX_LIST_LAYOUT = f"""\
  DATA_ROOT/<images, any sub-folders>
  DATA_ROOT/boxes.csv   header {','.join(TABLE_COLUMNS)}; one row per box, path relative to
                        DATA_ROOT (several rows for an image with several boxes)
  or boxes.json         [{{"path": ..., "class": ..., "xmin": ...}}, ...]
                        or {{"classes": [...], "boxes": [...]}}"""

IMAGE_SUFFIXES = (".JPEG", ".jpg", ".jpeg", ".png", ".JPG", ".PNG")


class _BoxDataset(ImageDatasetBase, metaclass=abc.ABCMeta):
    """Records -> data infos, shared by the two layouts."""

    def __init__(self, classes: Sequence[str], image_root: str, **kwargs: Any) -> None:
        self.image_root = image_root
        metainfo = dict(kwargs.pop("metainfo", None) or {}, classes=tuple(classes))
        super().__init__(metainfo=metainfo, **kwargs)

    @abc.abstractmethod
    def records(self) -> list[Record]:
        """The layout's box records, one per image."""

    def load_data_list(self) -> list[dict]:
        records = self.records()
        labels = label_records(records, self.metainfo["classes"])
        return [{"img_path": os.path.join(self.image_root, r.path), "gt_label": int(lab[0]),
                 "gt_bboxes": np.asarray(r.boxes, dtype=np.float32), "gt_bboxes_labels": lab,
                 "ann_size": r.size} for r, lab in zip(records, labels)]


def _classes_from(records: list[Record]) -> list[str]:
    return sorted({name for r in records for name in r.names})


class BoxList(_BoxDataset):
    """An image folder plus a CSV or JSON table of boxes (see :data:`BOX_LIST_LAYOUT`).

    Args:
        data_root: the folder the table's paths are relative to.
        ann_file: the table, relative to ``data_root`` or absolute.
        classes: class names (or a file, one per line) fixing the index
            order; default the JSON's ``classes``, else the sorted names.
        clip_boxes: clip boxes leaving their image instead of raising.
        bad_images, **kwargs: as :class:`vggkit.data.datasets.ImageFolder`.
    """

    def __init__(self, data_root: str, ann_file: str = "boxes.csv",
                 classes: str | Sequence[str] | None = None, clip_boxes: bool = False,
                 bad_images: str = "skip", **kwargs: Any) -> None:
        root = os.path.abspath(os.path.expanduser(os.fspath(data_root)))
        self.table = os.path.join(root, ann_file)
        if not os.path.isfile(self.table):
            raise DatasetLayoutError(f"box file '{self.table}' not found; expected layout:\n"
                                     f"{BOX_LIST_LAYOUT}")
        self.clip_boxes = clip_boxes
        self._records: list[Record] | None = None
        if classes is not None:
            names = read_classes(classes)
        else:
            records, listed = self._read()
            names = [str(c) for c in listed] if listed else _classes_from(records)
        super().__init__(names, root, data_root=root, bad_images=bad_images, **kwargs)

    def _read(self) -> tuple[list[Record], list[str] | None]:
        def size_of(path: str) -> tuple[int, int]:
            full = os.path.join(os.path.dirname(self.table), path)
            if not os.path.isfile(full):
                raise AnnotationError(f"box file '{self.table}': image '{path}' does not exist "
                                      f"(looked for '{full}')")
            return image_size(full)
        records, listed = read_table(self.table, size_of, self.clip_boxes)
        self._records = records
        return records, listed

    def records(self) -> list[Record]:
        return self._records if self._records is not None else self._read()[0]


def _find_layout(root: str, split: str, img_dir: str | None, ann_dir: str | None
                 ) -> tuple[str, str]:
    if img_dir or ann_dir:
        pairs = [(img_dir or split, ann_dir or os.path.join("bbox", split))]
    else:
        pairs = [(os.path.join("Data", "CLS-LOC", split),
                  os.path.join("Annotations", "CLS-LOC", split)),
                 (split, os.path.join("bbox", split))]
    for images, anns in pairs:
        if os.path.isdir(os.path.join(root, images)) and os.path.isdir(os.path.join(root, anns)):
            return os.path.join(root, images), os.path.join(root, anns)
    tried = "; ".join(f"{i} + {a}" for i, a in pairs)
    raise DatasetLayoutError(f"ILSVRC localisation root '{root}', split '{split}': no image and "
                             f"annotation folders (tried {tried}); expected layout:\n"
                             f"{ILSVRC_LAYOUT}")


class ILSVRCLocalisation(_BoxDataset):
    """ILSVRC-2012 CLS-LOC: images plus one PASCAL-style XML of boxes per image.

    Only images with an XML are used (ILSVRC has boxes for a subset of the
    training images and for every validation image).

    Args:
        data_root: the ILSVRC root (see :data:`ILSVRC_LAYOUT`).
        split: 'train' or 'val'.
        img_dir, ann_dir: override the image and XML folders (relative to
            ``data_root`` or absolute).
        classes: synset names (or a file) fixing the index order, as the
            classifier's (see the layout for the default).
        clip_boxes, bad_images, **kwargs: as :class:`BoxList`.
    """

    def __init__(self, data_root: str, split: str = "val", img_dir: str | None = None,
                 ann_dir: str | None = None, classes: str | Sequence[str] | None = None,
                 clip_boxes: bool = False, bad_images: str = "skip", **kwargs: Any) -> None:
        root = os.path.abspath(os.path.expanduser(os.fspath(data_root)))
        if not os.path.isdir(root):
            raise DatasetLayoutError(f"ILSVRC localisation root '{root}' does not exist; "
                                     f"expected layout:\n{ILSVRC_LAYOUT}")
        self.split, self.clip_boxes = split, clip_boxes
        self.img_dir, self.ann_dir = _find_layout(root, split, img_dir, ann_dir)
        self._records: list[Record] | None = None
        super().__init__(self._classes(root, classes), self.img_dir, data_root=root,
                         bad_images=bad_images, **kwargs)

    def _classes(self, root: str, classes: str | Sequence[str] | None) -> list[str]:
        mapping = os.path.join(root, "LOC_synset_mapping.txt")
        if classes is not None or os.path.isfile(mapping):
            return read_classes(classes if classes is not None else mapping)
        try:  # the classifier's index: the sorted synset folders of the train images
            train = self.img_dir if self.split == "train" else _find_layout(root, "train", None,
                                                                           None)[0]
        except DatasetLayoutError:
            train = None
        folders = list_class_dirs(train) if train else []
        return folders or _classes_from(self.records())

    def _image_of(self, xml: str) -> str:
        stem = os.path.splitext(os.path.relpath(xml, self.ann_dir))[0]
        for suffix in IMAGE_SUFFIXES:
            if os.path.isfile(os.path.join(self.img_dir, stem + suffix)):
                return stem + suffix
        raise AnnotationError(f"annotation '{xml}' has no image: looked for "
                              f"'{os.path.join(self.img_dir, stem)}' with suffix "
                              f"{'/'.join(IMAGE_SUFFIXES)}")

    def records(self) -> list[Record]:
        if self._records is None:
            xmls = sorted(os.path.join(d, f) for d, _, files in os.walk(self.ann_dir)
                          for f in files if f.lower().endswith(".xml"))
            if not xmls:
                raise DatasetLayoutError(f"no .xml annotations under '{self.ann_dir}'; expected "
                                         f"layout:\n{ILSVRC_LAYOUT}")
            self._records = [read_xml(x, self._image_of(x), self.clip_boxes) for x in xmls]
        return self._records
