# Appendix A at S = 256: per-class regression (PCR), a box per class (4000 outputs; the loss
# uses the true class's 4), all layers fine-tuned from the classification net D at S = 256.
# Table 9's S = 256 net (29.5 % top-5 localisation error at Q = 256) and one of its fusion.
_base_ = ['./_base_loc.py']
model = dict(regression='per_class', finetune='all')
