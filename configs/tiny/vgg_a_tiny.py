# Configuration A at 1/16 width with 64-wide FC layers, 32-pixel crops from
# S in [32, 64]: the paper's recipe shrunk for smoke tests and CPU demos.
#   python tools/train.py configs/tiny/vgg_a_tiny.py --data-root DIR
# DIR is any image folder: DIR/<class>/*.jpg, or DIR/train/<class>/ + DIR/val/<class>/.
_base_ = ['../_base_/models/vgg.py', '../_base_/schedules/paper_sgd.py',
          '../_base_/default_runtime.py']

data_root = 'data/tiny'
train_scale = (32, 64)
crop_size = 32
total_batch_size = 16
batch_per_gpu = None  # total / number of processes, no accumulation

model = dict(vgg=dict(arch='A', num_classes=None,  # None: the image folder's class count
                      width_mult=1 / 16, fc_width=64, input_size=crop_size,
                      init='glorot'))  # the paper's alternative to pre-training
optim_wrapper = dict(optimizer=dict(lr=0.02), accumulative_counts=1)
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='top1_error', rule='less', factor=0.1,
         patience=2, threshold=1e-3, min_value=2e-5, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=12, val_interval=1)

train_pipeline = [
    dict(type='LoadScaleCrop', scale=train_scale, crop=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='TestRescale', scale=48, crop=crop_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=total_batch_size, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SeededDataset',
                 dataset=dict(type='ImageFolder', data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=32, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageFolder', data_root=data_root, pipeline=val_pipeline))
val_evaluator = dict(type='TopKError', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=1, max_keep_ckpts=2, iter_interval=20))
