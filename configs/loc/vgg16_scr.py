# Appendix A at S = 256: single-class regression (SCR), one box (4 outputs) shared by all
# classes, all layers fine-tuned from the classification net D at S = 256. Table 8 (at
# S = 384) has no SCR all-layers row: the paper fine-tuned all layers only for PCR.
_base_ = ['./_base_loc.py']
model = dict(regression='single_class', finetune='all')
