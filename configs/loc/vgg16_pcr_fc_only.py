# Appendix A, Table 8: per-class regression (PCR) with only the FC layers fine-tuned
# (the conv layers keep the classification net D's weights, frozen).
_base_ = ['./_base_loc.py']
model = dict(regression='per_class', finetune='fc')
