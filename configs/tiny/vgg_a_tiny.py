# Configuration A at 1/4 width with 128-wide FC layers, 32-pixel crops from
# S in [32, 48]: the paper's recipe shrunk for smoke tests and CPU demos.
#   python tools/train.py configs/tiny/vgg_a_tiny.py --data-root DIR
# DIR is any image folder: DIR/<class>/*.jpg, or DIR/train/<class>/ + DIR/val/<class>/.
#
# Kept from the paper: SGD lr 0.01 for 256 images per step (scaled linearly to
# this config's 16: 6.25e-4), momentum 0.9, weight decay 5e-4, mean
# subtraction, scale jittering, random crops, flips, PCA colour, the plateau
# schedule. Changed, each for a reason measured on scikit-learn's digits
# (docs/recipe_check.md has the per-layer statistics):
# * He init with inputs divided by the ImageNet std: Glorot halves the signal
#   at every ReLU (fc7 varies 100x less across images than conv1 at init) and
#   both He and Glorot assume unit-variance inputs, not 0-255 pixels;
# * no dropout: on 128-wide FC layers dropout 0.5 leaves 64 units and was the
#   largest brake on learning (the paper's 4096-wide layers keep 2048);
# * S_max = 1.5 crops: with S up to 2 crops a crop of an object that fills the
#   frame sees a quarter of it.
_base_ = ['../_base_/models/vgg.py', '../_base_/schedules/paper_sgd.py',
          '../_base_/default_runtime.py']

data_root = 'data/tiny'
train_scale = (32, 48)
crop_size = 32
total_batch_size = 16
batch_per_gpu = None  # total / number of processes, no accumulation

model = dict(vgg=dict(arch='A', num_classes=None,  # None: the image folder's class count
                      width_mult=1 / 4, fc_width=128, input_size=crop_size,
                      dropout=0.0, init='kaiming'),
             data_preprocessor=dict(std=[58.395, 57.12, 57.375]))
optim_wrapper = dict(accumulative_counts=1)
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='top1_error', rule='less', factor=0.1,
         patience=2, threshold=1e-3, min_value=1e-5, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)

train_pipeline = [
    dict(type='LoadScaleCrop', scale=train_scale, crop=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='TestRescale', scale=40, crop=crop_size),  # Q = the middle of [S_min, S_max]
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
