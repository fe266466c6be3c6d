"""PASCAL VOC transfer tasks for vggkit: image classification and action classification."""
