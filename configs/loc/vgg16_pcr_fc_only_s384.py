# Appendix A, Table 8 (S = 384): per-class regression (PCR), only the FC layers fine-tuned
# from the classification net D at S = 384 (paper: 34.3 % error, centre crop, true class).
_base_ = ['./_base_loc_s384.py']
model = dict(regression='per_class', finetune='fc')
