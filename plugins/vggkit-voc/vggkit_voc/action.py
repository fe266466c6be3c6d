"""VOC-2012 action classification (the VGG paper's Appendix B): one item per person box.

The unit is a person instance, an image with a person box given at test time,
named ``<image id>/<person index>`` (e.g. ``2010_006088/1``). What its
descriptor describes is the ``context`` option, a '+'-joined list of parts
stacked in order, each 'whole' (the whole image) or 'box' (the person box cut
out and described like an image, at the same scales):

* ``whole``: the paper's first setting (79.2 mAP with Net-D & Net-E);
* ``whole+box``: the paper's second setting, the two stacked (84.0 mAP);
* ``box``: the person box alone.

The parts become the items' regions (:attr:`vggkit.transfer.task.TaskData.regions`),
so the extraction layer does the cropping and stacking for any task alike.

Labels: ``ImageSets/Action/<class>_<split>.txt`` (``<id> <person> <1|-1|0>``)
when they exist, else the ``<actions>`` of the annotations. AP is the VOC-2010+
area under the monotone precision/recall curve on the ten classes. 'other'
(a person doing none of the ten) gets no classifier, as in the devkit; such
persons stay in both sets as negatives of every class. 0 labels are ignored
for that class, as VOCevalaction.m does. Withheld test labels (no class files,
no actions in the annotations) give all-zero rows: the test set is then only
scored by the evaluation server, from the ``comp10_action_test_<class>.txt``
files ``svm_transfer`` writes (comp10: trained on outside data, ImageNet here).
"""
from __future__ import annotations

import os

import numpy as np

from vggkit.errors import UserError
from vggkit.features.regions import Box, ItemRegions
from vggkit.transfer.metrics import voc_area_ap
from vggkit.transfer.task import TaskData, TaskLayoutError
from vggkit_voc.persons import ACTIONS, ActionAnnotation, AnnotationError, Person
from vggkit_voc.tasks import VOCTask, missing_label, read_class_file

ACTION_LAYOUT = ("VOCdevkit/VOC2012/{JPEGImages/<id>.jpg, ImageSets/Action/<split>.txt "
                 "(<id> <person index>), ImageSets/Action/<class>_<split>.txt "
                 "(<id> <person index> <1|-1|0>), Annotations/<id>.xml (person <bndbox>, <actions>)}")
#: the parts a person's descriptor may stack
PARTS = ("whole", "box")


def read_instances(path: str) -> list[tuple[str, int]]:
    """``(image id, person index)`` of the lines of an ImageSets/Action/<split>.txt file."""
    out, seen = [], set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
                raise AnnotationError(f"{path}:{n}: expected '<image id> <person index>' with "
                                      f"an index from 1, got {line.strip()!r}")
            key = (parts[0], int(parts[1]))
            if key in seen:
                raise AnnotationError(f"{path}:{n}: person {key[1]} of {key[0]} is listed twice; "
                                      "remove the repeated line")
            seen.add(key)
            out.append(key)
    return out


class VOC2012Action(VOCTask):
    """VOC-2012 action classification of person boxes: trainval → test, area AP, 10 classes.

    Args:
        train_split: image set to train on (default 'trainval'; 'train' to test on 'val').
        test_split: image set to test on (default 'test', labels withheld; 'val',
            with train_split 'train', to evaluate without the server).
        context: the parts stacked in a person's descriptor, in order: 'whole',
            'box' or 'whole+box' ('box+whole' stacks them the other way round).
    """

    name = "voc2012_action"
    year = "2012"
    image_sets = "Action"
    layout = ACTION_LAYOUT
    competition = "comp10_action"  # comp10: action classification trained on outside data

    def __init__(self, train_split: str = "trainval", test_split: str = "test",
                 context: str = "whole") -> None:
        super().__init__(train_split, test_split)
        parts = tuple(str(context).split("+"))
        if not all(p in PARTS for p in parts) or len(set(parts)) != len(parts):
            raise UserError(f"task '{self.name}': unknown context '{context}'; use 'whole', 'box' "
                            "or 'whole+box' (parts joined by '+')")
        self.context = parts

    def ap(self, scores: np.ndarray, gt: np.ndarray) -> float:
        return voc_area_ap(scores, gt)

    def submission_id(self, item_id: str) -> str:
        image_id, _, person = item_id.rpartition("/")
        return f"{image_id} {person}"  # the devkit's '<image id> <object index>' columns

    def regions(self, box: Box) -> ItemRegions:
        """The regions one person's descriptor stacks, in the order of ``context``."""
        return tuple(None if part == "whole" else box for part in self.context)

    def scan(self, data_root: str) -> TaskData:
        root = self.devkit_dir(data_root)
        ids, paths, labels, subsets, regions = [], [], [], [], []
        for split in (self.train_split, self.test_split):
            list_file = self.split_list(root, split)
            people = self._people(root, read_instances(list_file), list_file)
            split_ids = [f"{image_id}/{person.index}" for image_id, person, _ in people]
            ids += split_ids
            paths += [path for _, _, path in people]
            regions += [self.regions(person.box) for _, person, _ in people]
            labels.append(self._labels(root, split, split_ids, [person for _, person, _ in people]))
            subsets += [split] * len(people)
        self.check_disjoint(ids)
        return TaskData(ids=ids, paths=paths, labels=np.concatenate(labels), classes=list(ACTIONS),
                        subsets=subsets, root=root, regions=regions)

    def _people(self, root: str, instances: list[tuple[str, int]], list_file: str
                ) -> list[tuple[str, Person, str]]:
        """``(image id, checked person, image path)`` of each listed instance (files read once)."""
        annotations: dict[str, ActionAnnotation] = {}
        out = []
        for image_id, index in instances:
            path = self.image_path(root, image_id, list_file)
            if image_id not in annotations:
                xml = os.path.join(root, "Annotations", f"{image_id}.xml")
                annotations[image_id] = ActionAnnotation(xml, path)
            out.append((image_id, annotations[image_id].person(index, list_file), path))
        return out

    def _labels(self, root: str, split: str, ids: list[str], people: list[Person]) -> np.ndarray:
        """``(N, 10)`` int8 labels of the split: class files, else annotations, else withheld."""
        files = [os.path.join(root, "ImageSets", "Action", f"{cls}_{split}.txt") for cls in ACTIONS]
        present = [os.path.isfile(f) for f in files]
        if any(present):
            if not all(present):
                raise TaskLayoutError(f"{files[present.index(False)]} not found, but other class "
                                      f"files of '{split}' exist; expected layout: {self.layout}")
            labels = np.zeros((len(ids), len(ACTIONS)), dtype=np.int8)
            for k, path in enumerate(files):
                table = read_class_file(path, keys=("image id", "person index"))
                missing_label(path, split, ids, table)
                labels[:, k] = [table[i] for i in ids]
            return labels
        known = [p.actions is not None for p in people]
        if not any(known):
            return np.zeros((len(ids), len(ACTIONS)), dtype=np.int8)  # withheld: all-zero rows
        if not all(known):
            raise AnnotationError(f"person '{ids[known.index(False)]}' of '{split}' has no action "
                                  "marked 1 in Annotations/<id>.xml while others have; mark its "
                                  "actions ('other' if none of the ten) or add the class files "
                                  f"ImageSets/Action/<class>_{split}.txt")
        return np.array([[1 if a in p.actions else -1 for a in ACTIONS] for p in people],
                        dtype=np.int8)
