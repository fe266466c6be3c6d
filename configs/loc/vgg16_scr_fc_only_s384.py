# Appendix A, Table 8 (S = 384): single-class regression (SCR), only the FC layers
# fine-tuned from the classification net D at S = 384 (paper: 36.4 % error, centre crop,
# true class).
_base_ = ['./_base_loc_s384.py']
model = dict(regression='single_class', finetune='fc')
