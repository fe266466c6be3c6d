# Appendix A, Table 8: per-class regression (PCR), a box per class (4000 outputs; the loss
# uses the true class's 4), all layers fine-tuned from the classification net D.
_base_ = ['./_base_loc.py']
model = dict(regression='per_class', finetune='all')
