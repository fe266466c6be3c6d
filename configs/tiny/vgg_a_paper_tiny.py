# The tiny net (vgg_a_tiny.py: A at 1/4 width, FC 128, 32-pixel crops) under the
# paper's own Sect. 3.1 rules for the lr, schedule and scales: lr 0.01 per 256
# images (scaled linearly to 16: 6.25e-4), lr / 10 when the validation error stops
# improving, S jittered in [32, 48], tested at Q = 40: vgg_a_tiny.py as it was before
# issue 24, kept for comparisons (docs/natural_images.md) and as the base of the
# localisation demo's classifier (configs/loc/tiny/digits_cls.py). vgg_a_tiny.py departs
# from these rules, for the reasons and figures in its header.
_base_ = ['./vgg_a_tiny.py']

train_scale = (32, 48)
optim_wrapper = dict(clip_grad=None, optimizer=dict(lr=0.01, momentum=0.9))  # the paper's, fixed
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='top1_error', rule='less', factor=0.1,
         patience=2, threshold=1e-3, min_value=1e-5, by_epoch=True),
]
train_pipeline = [
    dict(type='LoadScaleCrop', scale=train_scale, crop={{_base_.crop_size}}),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='TestRescale', scale=40, crop={{_base_.crop_size}}),  # the middle of [S_min, S_max]
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
