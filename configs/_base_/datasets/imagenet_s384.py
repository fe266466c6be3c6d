# Single-scale training at S = 384 (Table 3); validation centre crop at Q = 384.
_base_ = ['./imagenet_s256.py']
train_scale = 384
train_pipeline = [
    dict(type='LoadScaleCrop', scale=train_scale, crop=224),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='TestRescale', scale=384, crop=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
