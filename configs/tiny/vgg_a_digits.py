# The demo config (`make demo`): net A at 1/4 width with 128-wide FC layers on
# scikit-learn's digits upscaled to 64x64, 32-pixel crops from S in [32, 48].
# The recipe keeps the paper's shape (scale jittering, random crops, flips,
# PCA colour, plateau schedule); two departures make a from-scratch net A learn
# in a minute of CPU: inputs are divided by a std of 64 as well as
# mean-subtracted, and S stays near the crop so a crop sees most of a digit.
_base_ = ['./vgg_a_tiny.py']

train_scale = (32, 48)
model = dict(vgg=dict(width_mult=1 / 4, fc_width=128),
             data_preprocessor=dict(std=[64.0, 64.0, 64.0]))
optim_wrapper = dict(optimizer=dict(lr=0.01))
train_cfg = dict(max_epochs=30)
train_pipeline = [
    dict(type='LoadScaleCrop', scale=train_scale, crop=32),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='TestRescale', scale=40, crop=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
