"""Small data writers shared by several test modules (plain functions, not fixtures)."""
from __future__ import annotations

import json
import os

import numpy as np


def write_store(path, X, labels, ids, subsets, classes, task):
    """A complete feature store as tools/extract_features.py leaves it (manifest + arrays)."""
    path.mkdir()
    np.save(path / "features.npy", X.astype(np.float32))
    np.save(path / "labels.npy", labels)
    manifest = {"format": "vggkit-features/1", "status": "complete", "features_file": "features.npy",
                "labels_file": "labels.npy", "ids": ids, "subsets": subsets, "classes": classes,
                "settings": {"task": task}}
    (path / "manifest.json").write_text(json.dumps(manifest))


def extraction_script(body: str) -> str:
    """Python source running ``tools/extract_features.py`` on argv in a fresh process.

    It registers the test task of ``test_features_store`` and binds
    ``real = runner.FeatureStore.write_shard`` so ``body`` can wrap shard
    writes (to kill or pause the process at a chosen shard).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    return ("import os, sys\n"
            f"sys.path.insert(0, {here!r})\n"
            "from test_features_store import _Plugin\n"
            "from vggkit.plugins import register_plugin\n"
            "from vggkit.features import extract_tool, runner\n"
            "register_plugin(_Plugin(), 'features_tests')\n"
            "real = runner.FeatureStore.write_shard\n"
            f"{body}\n"
            "sys.exit(extract_tool.main(sys.argv[1:]))\n")
