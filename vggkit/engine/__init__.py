"""Sect. 3.1 of the paper: training with mmengine (classifier, runner hooks, train tool)."""
