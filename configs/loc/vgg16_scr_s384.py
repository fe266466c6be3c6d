# Appendix A at S = 384: single-class regression (SCR), all layers fine-tuned from the
# classification net D at S = 384. Not a row of Table 8, which fine-tuned all layers for PCR
# only; with vgg16_scr_fc_only_s384.py it completes the SCR/PCR x FC/all grid.
_base_ = ['./_base_loc_s384.py']
model = dict(regression='single_class', finetune='all')
