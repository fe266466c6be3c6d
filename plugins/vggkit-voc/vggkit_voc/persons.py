"""The people of a VOC action annotation: each person's box and actions, checked.

``Annotations/<id>.xml`` of a VOC-2012 action image holds ``<object>``
elements; the devkit numbers them from 1 in file order (``rec.objects(j)``)
and ``ImageSets/Action`` names a person by that number. A person object has
``<name>person</name>``, a ``<bndbox>`` (1-based, inclusive pixels) and
``<actions>`` with a 0/1 entry per action: the ten classes and ``other``.
Test annotations give the boxes (persons are located at test time) and
withhold the actions.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property

from vggkit.errors import UserError
from vggkit.features.regions import Box

#: the ten action classes of VOC-2012, the devkit's order (AP is reported on these)
ACTIONS = ("jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse",
           "running", "takingphoto", "usingcomputer", "walking")
#: the eleventh action label: the person does none of the ten (the devkit trains no classifier)
OTHER = "other"


class AnnotationError(UserError, ValueError):
    """An action annotation that breaks the devkit's layout (the message names file and fix)."""


@dataclass(frozen=True)
class Person:
    """One person instance: the devkit's object index, the box, the actions.

    Attributes:
        index: 1-based position among the file's ``<object>`` elements.
        box: ``(left, top, right, bottom)`` pixels, half-open
            (:mod:`vggkit.features.regions`): a VOC box ``xmin..xmax`` is
            ``(xmin - 1, ymin - 1, xmax, ymax)``.
        actions: the actions marked 1 (``other`` included); None when the file
            marks none (the test set's withheld labels).
    """

    index: int
    box: Box
    actions: frozenset[str] | None


class ActionAnnotation:
    """The annotation file of one image, read once, checked person by person.

    Args:
        xml_path: ``Annotations/<id>.xml``.
        image_path: ``JPEGImages/<id>.jpg`` (its header gives the true size).
    """

    def __init__(self, xml_path: str, image_path: str) -> None:
        self.xml_path, self.image_path = xml_path, image_path
        if not os.path.isfile(xml_path):
            raise AnnotationError(f"annotation {xml_path} is missing: every image of "
                                  "ImageSets/Action needs Annotations/<id>.xml with its person boxes")
        try:
            self.root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            raise AnnotationError(f"annotation {xml_path} is not valid XML ({exc}); restore the "
                                  "file from the devkit") from exc
        self.objects = self.root.findall("object")

    def _fault(self, what: str, fix: str) -> AnnotationError:
        return AnnotationError(f"{self.xml_path}: {what}; {fix}")

    @cached_property
    def sizes(self) -> list[tuple[str, int, int]]:
        """``(source, width, height)`` a box must fit: the XML's ``<size>`` and the image file's."""
        from vggkit.data.io import BadImageError, image_size
        out = []
        size = self.root.find("size")
        if size is not None and size.findtext("width") and size.findtext("height"):
            try:
                out.append(("its <size>", round(float(size.findtext("width") or "")),
                            round(float(size.findtext("height") or ""))))
            except (ValueError, OverflowError):
                raise self._fault("<size> has a non-numeric width or height",
                                  "fix it or remove <size>") from None
        try:
            width, height = image_size(self.image_path)
        except BadImageError:
            return out  # extraction names the unreadable image under its --bad-images policy
        out.append((f"the image {self.image_path}", width, height))
        return out

    def person(self, index: int, listed_in: str) -> Person:
        """The person the list ``listed_in`` names by ``index``, checked.

        Raises:
            AnnotationError: naming the file and the fault: no person boxes at
                all, no such object, not a person, no or a degenerate box, a
                box beyond the image, an unknown action or value.
        """
        if not any(_is_person(o) and o.find("bndbox") is not None for o in self.objects):
            raise self._fault("has no person boxes (no <object> named 'person' with a <bndbox>)",
                              "the action task describes person boxes: annotate them or drop "
                              f"the image from {listed_in}")
        if not 1 <= index <= len(self.objects):
            raise self._fault(f"has no object {index} (it has {len(self.objects)}), but {listed_in} "
                              f"names person {index}", "fix the person index in the list")
        obj = self.objects[index - 1]
        if not _is_person(obj):
            raise self._fault(f"object {index} is a '{(obj.findtext('name') or '').strip()}', "
                              f"not a person, but {listed_in} names it", "fix the person index")
        return Person(index=index, box=self._box(obj, index), actions=self._actions(obj, index))

    def _box(self, obj: ET.Element, index: int) -> Box:
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise self._fault(f"person {index} has no <bndbox>",
                              "person boxes are given at test time: add the box")
        try:
            x0, y0, x1, y1 = (round(float(bndbox.findtext(k) or "")) for k in
                              ("xmin", "ymin", "xmax", "ymax"))
        except (ValueError, OverflowError):
            raise self._fault(f"person {index} has a <bndbox> without numeric xmin, ymin, xmax, "
                              "ymax", "fix the box") from None
        voc = f"xmin {x0}, ymin {y0}, xmax {x1}, ymax {y1}"
        # a box one pixel wide is, in the devkit's inclusive pixels, a line: no person in it
        if x1 <= x0 or y1 <= y0:
            raise self._fault(f"person {index} has a box of zero area ({voc})",
                              "a person box needs xmin < xmax and ymin < ymax")
        for source, width, height in self.sizes:
            if x0 < 1 or y0 < 1 or x1 > width or y1 > height:
                raise self._fault(f"person {index} has a box ({voc}) outside the image: "
                                  f"{source} is {width}x{height} and VOC boxes are 1-based pixels "
                                  f"within 1..width, 1..height", "fix the box or the image")
        return (x0 - 1, y0 - 1, x1, y1)

    def _actions(self, obj: ET.Element, index: int) -> frozenset[str] | None:
        actions = obj.find("actions")
        if actions is None:
            return None
        marked = set()
        for entry in actions:
            if entry.tag not in ACTIONS and entry.tag != OTHER:
                raise self._fault(f"person {index} has an unknown action '{entry.tag}'",
                                  f"the VOC-2012 actions are {', '.join(ACTIONS)} and {OTHER}")
            value = (entry.text or "").strip()
            if value not in ("0", "1"):
                raise self._fault(f"person {index} marks action '{entry.tag}' with {value!r}",
                                  "use 1 (does it) or 0 (does not)")
            if value == "1":
                marked.add(entry.tag)
        return frozenset(marked) or None


def _is_person(obj: ET.Element) -> bool:
    return (obj.findtext("name") or "").strip() == "person"
