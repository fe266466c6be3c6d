# Appendix A at S = 256: per-class regression (PCR) with only the FC layers fine-tuned
# (the conv layers keep the S = 256 classification net D's weights, frozen).
_base_ = ['./_base_loc.py']
model = dict(regression='per_class', finetune='fc')
