# The localisation demo's classifier (vggkit localise --demo): the tiny net (net A at 1/4
# width, 128-wide FC layers, 32-pixel crops) trained on the digit canvases of
# vggkit/localisation/canvases.py. Its crops come from the box-aware transforms, so
# each keeps at least half of the digit: a label is never a crop of clutter alone.
# Its lr and schedule are the paper's (configs/tiny/vgg_a_paper_tiny.py: 0.01 per 256
# images, the plateau rule), not vgg_a_tiny.py's photo recipe: the floor of
# tests/test_localisation.py was measured over ten runs of this recipe (issue 25).
#   vggkit train configs/loc/tiny/digits_cls.py --data-root DIR
# DIR: vggkit.localisation.canvases.write_canvases's layout (train_boxes.csv, val_boxes.csv).
_base_ = ['../../tiny/vgg_a_paper_tiny.py']

data_root = 'data/loc_digits'
# A 32 window sees 2/3 to all of a canvas's short side. Not more: net A's pool5 has a
# 150-pixel receptive field, so at a larger S the features of a window describe the
# whole image and its box can no longer be told from its neighbours' (docs/localisation.md).
train_scale = (32, 48)
crop_size = 32
total_batch_size = 32    # the lr (0.01 for 256 images) is scaled to it

train_pipeline = [
    dict(type='LoadBoxImage'),
    dict(type='BoxRandomScaleCrop', scale=train_scale, crop=crop_size, min_visible=0.5),
    dict(type='BoxRandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackBoxInputs'),
]
val_pipeline = [
    dict(type='LoadBoxImage'),
    dict(type='BoxTestRescale', scale=crop_size, crop=crop_size),  # the whole short side
    dict(type='PackBoxInputs'),
]
# One persistent worker decodes beside a one-thread training step (both cores busy) and
# keeps its random stream across epochs (seeded by --seed). No SeededDataset: its
# per-sample reseeding cost a third of this small pipeline, and exact mid-epoch resume
# does not matter for a one-minute run.
train_dataloader = dict(
    num_workers=1, persistent_workers=True,
    dataset=dict(_delete_=True, type='BoxList', data_root=data_root, ann_file='train_boxes.csv',
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='BoxList', data_root=data_root, ann_file='val_boxes.csv',
                 pipeline=val_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=14)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(max_keep_ckpts=1, iter_interval=0))
