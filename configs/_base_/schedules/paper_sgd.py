# Sect. 3.1: mini-batch SGD, batch 256, momentum 0.9, weight decay 5e-4, lr 1e-2
# divided by 10 when the validation accuracy stops improving (3 times in the
# paper: min lr 1e-5), at most 74 epochs.
total_batch_size = 256   # kept whatever the number of GPUs (tools/train.py)
batch_per_gpu = 32       # images per GPU and iteration; accumulation makes up the rest
# The lr below is for base_batch_size images per step. A config with another
# total_batch_size gets it scaled (tools/train.py): 'linear' (Goyal et al. 2017),
# 'sqrt' or 'none'. At 256 nothing changes.
base_batch_size = 256
lr_scaling = 'linear'

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    accumulative_counts=total_batch_size // batch_per_gpu)  # 1 GPU; recomputed per world size

param_scheduler = [
    # the paper does not say how long "stops improving" is: patience in epochs
    dict(type='ReduceOnPlateauLR', monitor='top1_error', rule='less', factor=0.1,
         patience=3, threshold=1e-3, min_value=1e-5, by_epoch=True),
]

train_cfg = dict(by_epoch=True, max_epochs=74, val_interval=1)
val_cfg = dict()
test_cfg = dict()
