# Appendix A at S = 256: single-class regression (SCR) with only the FC layers fine-tuned
# (the conv layers keep the S = 256 classification net D's weights, frozen).
_base_ = ['./_base_loc.py']
model = dict(regression='single_class', finetune='fc')
