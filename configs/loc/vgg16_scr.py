# Appendix A, Table 8: single-class regression (SCR), one box (4 outputs) shared by all
# classes, all layers fine-tuned from the classification net D.
_base_ = ['./_base_loc.py']
model = dict(regression='single_class', finetune='all')
