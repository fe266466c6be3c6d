"""Appendix B: downstream transfer with linear SVMs on frozen VGG features.

``task`` (the TransferTask interface, TaskData, Split, build_task), ``single_label``
(class-folder tasks, the core 'imagefolder' and 'folder'), ``metrics`` (mean class recall, VOC AP),
``svm`` (joint one-vs-rest linear SVMs), ``folds`` (the held-out folds C is chosen on),
``selection`` (choosing C, retraining at it), ``experiment`` (the protocol over splits, its table and plot; the CLI is ``vggkit transfer``).
"""
