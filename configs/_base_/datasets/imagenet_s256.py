# ILSVRC-2012 (Sect. 3.1): isotropic rescale to S, random 224 crop, flip, PCA colour.
# Layout: DATA_ROOT/train/<wnid>/*.JPEG, DATA_ROOT/val/<wnid>/*.JPEG (or a val list file).
data_root = 'data/imagenet'
train_scale = 256            # S, or (S_min, S_max) for scale jittering
crop_size = 224

train_pipeline = [
    # decode (JPEG draft mode) + rescale to S + crop in one step: same distribution
    dict(type='LoadScaleCrop', scale=train_scale, crop=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
# validation during training: single centre crop at Q = S (the full protocols
# of Sect. 3.2 are tools/test.py's)
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='TestRescale', scale=256, crop=crop_size),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,  # set from total_batch_size / (GPUs x accumulation) by tools/train.py
    num_workers=8,
    persistent_workers=False,  # SeededDataset hands the epoch to fresh workers
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SeededDataset',
                 dataset=dict(type='ImageNet', data_root=data_root, split='train',
                              pipeline=train_pipeline)),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root=data_root, split='val', pipeline=val_pipeline),
)
val_evaluator = dict(type='TopKError', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
