# The paper's Sect. 3.1 recipe on a small copy of its nets, for `vggkit recipe-check`
# (vggkit/engine/recipe_check/). Usable alone too:
#   python tools/train.py configs/recipe_check/vgg_paper_small.py --data-root DIR
# though the check sets the data's own statistics, the run's S and the budget itself.
#
# Kept from the paper: N(0, 0.01^2)-style init with zero biases, SGD lr 0.01 per step
# (not scaled down for the smaller batch: docs/training_collapse.md measured the
# linearly scaled 6.25e-4 as far too slow), momentum 0.9, weight decay 5e-4, dropout
# 0.5 on fc6 and fc7, the training set's mean subtracted in 0-255 (no division),
# PCA lighting, flips, lr divided by 10 at fixed points.
# Scaled down, each for a reason:
# * width 1/4, 32-pixel crops: minutes on 2 CPU cores;
# * init 'paper_scaled': std 0.01 x sqrt(full-size fan-in / fan-in) per layer, so each
#   layer keeps the full-size net's gain (plain 0.01 gives conv1_1 the same gain but
#   fc6, whose fan-in falls from 25,088 to 128, 1/14 of it: the logits start ~200x
#   weaker in variance);
# * FC 512, not 4096/4: dropout 0.5 keeps ~256 units, twice fc6's 128 inputs and 25 per
#   class at 10 classes (the paper keeps 2,048: 2 per class at 1,000); 512 costs
#   little next to the convs;
# * batch 64: the paper's 256 would leave a few hundred steps in the budget;
# * S = 32 with 4 pixels of black padding: on 32-pixel images the crop is the whole
#   image, and padding gives the shifts the paper's 224 crop of a 256 image gives;
# * the lr cuts come at 70 % and 90 % of the budget (the check sets them): the paper's
#   plateau rule cut the lr during the first stretch at chance, before any learning.
# The data section (image folder, pad-4 crops at S = Q = 32, flips, TopKError) is
# vgg_a_tiny.py's: only what differs is written here.
_base_ = ['../tiny/vgg_a_tiny.py']

data_root = 'data/digits'
total_batch_size = 64
base_batch_size = 64  # the paper's 0.01 is taken per step at this batch: no scaling
lr_scaling = 'none'

model = dict(vgg=dict(fc_width=512, dropout=0.5, init='paper_scaled', init_std=0.01),
             # the check points stats_file at the training set's own statistics
             data_preprocessor=dict(mean=None, std=[1.0, 1.0, 1.0], stats_file=None))
optim_wrapper = dict(clip_grad=None, optimizer=dict(lr=0.01, momentum=0.9))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[7, 9], gamma=0.1)]

train_pipeline = [
    dict(type='LoadScaleCrop', scale=32, crop=32, pad=4),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1, stats_file=None),
    dict(type='PackInputs'),
]
# Q: the check sets the run's own in the validation pipeline's TestRescale
train_dataloader = dict(batch_size=total_batch_size, num_workers=0,
                        dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(batch_size=64, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

default_hooks = dict(
    logger=dict(interval=50),
    # one checkpoint per epoch is the resume point; no mid-epoch ones
    checkpoint=dict(interval=1, max_keep_ckpts=2, iter_interval=1000000, save_best=None))
