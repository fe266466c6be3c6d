"""Appendix A: single-object localisation with a VGG that regresses a box.

* :mod:`~vggkit.localisation.model`: ``VGGLocaliser``, SCR/PCR heads, L2 loss;
* :mod:`~vggkit.localisation.annotations`, :mod:`~vggkit.localisation.datasets`:
  ILSVRC XML boxes and a generic CSV/JSON table;
* :mod:`~vggkit.localisation.transforms`: box-aware rescale, crop, flip;
* :mod:`~vggkit.localisation.candidates`, :mod:`~vggkit.localisation.merging`,
  :mod:`~vggkit.localisation.protocol`: dense application, greedy merging (over
  the union of several nets' boxes when they are fused), localisation error
  (:mod:`~vggkit.localisation.metrics`);
* :mod:`~vggkit.localisation.api`: ``localise``, all of it in one call (what
  ``vggkit localise`` runs);
* :mod:`~vggkit.localisation.demo`: the whole system on digits pasted on canvases.
"""

#: the test protocols by name (here, with no torch: ``vggkit localise --help`` lists them):
#: center, one central crop per scale; dense, the nets fully convolutional, boxes merged
PROTOCOLS = ("center", "dense")

