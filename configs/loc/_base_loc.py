# Appendix A: net D whose last FC layer regresses a box, trained on ILSVRC-2012 CLS-LOC.
# Shared by vgg16_scr.py, vgg16_pcr.py and vgg16_pcr_fc_only.py (the paper's variants).
#   vggkit train configs/loc/vgg16_pcr.py --data-root data/ilsvrc \
#       --cfg-options model.vgg.init_checkpoint=work_dirs/vgg16_d/epoch_74.pth
# Layout (vggkit/localisation/datasets.py): Data/CLS-LOC/{train,val} +
# Annotations/CLS-LOC/{train,val} (the LOC_* download), or {train,val}/ + bbox/{train,val}/
# (the ILSVRC-2012 bbox tarballs).
#
# From the paper: initialised from the classification net D (all layers but fc8),
# Euclidean loss, lr 1e-3 (for 256 images per step, scaled with the batch as every
# config), the rest of Sect. 3.1's SGD recipe and augmentation. Not in the paper,
# chosen here: the training scale (S = 256, as configs/vgg16_d.py's classifier), the
# schedule length (the plateau schedule on the validation box error, at most 74
# epochs) and the box rules of docs/localisation.md (crops keep >= 50 % of a box).
_base_ = ['../_base_/schedules/paper_sgd_finetune.py', '../_base_/default_runtime.py']

data_root = 'data/ilsvrc'
classifier_checkpoint = 'work_dirs/vgg16_d/epoch_74.pth'
imagenet_mean = [123.68, 116.779, 103.939]
train_scale = 256
crop_size = 224

model = dict(
    type='VGGLocaliser',
    regression='per_class',   # 'single_class': SCR, 4 outputs; 'per_class': PCR, 4000
    finetune='all',           # 'fc': conv layers frozen
    vgg=dict(arch='D', num_classes=1000, dropout=0.5, fc_width=4096, input_size=crop_size,
             init='from_checkpoint', init_checkpoint=classifier_checkpoint),
    data_preprocessor=dict(type='VGGDataPreprocessor', mean=imagenet_mean),
)

train_pipeline = [
    dict(type='LoadBoxImage'),
    dict(type='BoxRandomScaleCrop', scale=train_scale, crop=crop_size, min_visible=0.5,
         max_tries=10),
    dict(type='BoxRandomFlip', prob=0.5),
    dict(type='PCALighting', std=0.1),
    dict(type='PackBoxInputs'),
]
val_pipeline = [
    dict(type='LoadBoxImage'),
    dict(type='BoxTestRescale', scale=train_scale, crop=crop_size),
    dict(type='PackBoxInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SeededDataset', dataset=dict(
        type='ILSVRCLocalisation', data_root=data_root, split='train', pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=32, num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ILSVRCLocalisation', data_root=data_root, split='val',
                 pipeline=val_pipeline))
val_evaluator = dict(type='BoxError')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# the box error with the true class (%) replaces top-1 error as the monitored value
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='loc_error', rule='less', factor=0.1,
         patience=3, threshold=1e-3, min_value=1e-6, by_epoch=True),
]
default_hooks = dict(checkpoint=dict(save_best='loc_error', rule='less'))
