"""PASCAL VOC classification transfer tasks for vggkit."""
