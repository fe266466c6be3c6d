"""Caltech-101 / Caltech-256 transfer tasks for vggkit."""
