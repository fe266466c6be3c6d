# Sect. 3.1 fine-tuning (S = 384 from S = 256; scale jittering from S = 384): lr 1e-3.
_base_ = ['./paper_sgd.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='top1_error', rule='less', factor=0.1,
         patience=3, threshold=1e-3, min_value=1e-6, by_epoch=True),
]
