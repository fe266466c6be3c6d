# Appendix A, Tables 8 and 9 (S = 384): per-class regression (PCR), all layers fine-tuned
# from the classification net D at S = 384: the paper's best setting (Table 8: 33.1 % error,
# centre crop, true class; Table 9: 28.2 % top-5 localisation error at Q = 384, 27.5 % at
# Q = 352, 384) and one of the two nets of its fusion (25.3 % on the test set).
_base_ = ['./_base_loc_s384.py']
model = dict(regression='per_class', finetune='all')
