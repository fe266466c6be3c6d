# Multi-scale training (scale jittering): S uniform in [256, 512] per image;
# validation as at S = 384 (centre crop at Q = 384, the middle of the range).
_base_ = ['./imagenet_s384.py']
train_scale = (256, 512)
train_pipeline = [
    dict(type='LoadScaleCrop', scale=train_scale, crop=224),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
