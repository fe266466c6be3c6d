"""Predicted vs true boxes on sample images, as one PNG (written atomically)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from vggkit.fileio import atomic_savefig

__all__ = ["plot_boxes"]


def _rectangle(ax: Any, box: Sequence[float], colour: str, style: str = "-") -> None:
    from matplotlib.patches import Rectangle
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                           linestyle=style, linewidth=1.5))


def plot_boxes(path: str, images: Sequence[Mapping[str, Any]], protocol: str = "dense",
               classes: Sequence[str] | None = None, columns: int = 4, title: str = "") -> None:
    """Draw each image with its true boxes (green), the top-1 guess (red, solid when
    its class is right, dotted when not) and the centre-box baseline (grey, dashed).

    ``images`` are the ``'images'`` records of :func:`vggkit.localisation.protocol.evaluate`.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from vggkit.data.io import read_image

    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    name = (lambda c: str(classes[c])) if classes else str
    for ax, record in zip(axes.flat, images):
        ax.imshow(read_image(record["img_path"]))
        for box in record["gt_bboxes"]:
            _rectangle(ax, box, "lime")
        guess = record[protocol]["guesses"][0]
        right = guess["class"] == record["gt_label"]
        _rectangle(ax, guess["box"], "red", "-" if right else ":")
        if "centre_box" in record.get("baselines", {}):
            _rectangle(ax, record["baselines"]["centre_box"], "silver", "--")
        ax.set_title(f"true {name(record['gt_label'])}, guess {name(guess['class'])}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title or f"green: true box; red: top-1 guess ({protocol}; dotted: wrong "
                          "class); grey dashed: centre-box baseline", fontsize=8)
    fig.tight_layout()
    atomic_savefig(path, fig, dpi=80)
    plt.close(fig)
