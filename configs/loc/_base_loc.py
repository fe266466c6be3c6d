# Appendix A: net D whose last FC layer regresses a box, trained on ILSVRC-2012 CLS-LOC, at
# S = 256 from the classifier trained at S = 256 (configs/vgg16_d.py). The paper trains one
# localisation net at S = 256 and one at S = 384, each initialised from the classification
# net of the same scale: _base_loc_s384.py is the S = 384 one. The variants (Table 8: SCR or
# PCR, all layers or the FC layers only) are vgg16_{scr,pcr}[_fc_only][_s384].py.
#   vggkit train configs/loc/vgg16_pcr.py --data-root data/ilsvrc
# Layout (vggkit/localisation/datasets.py): Data/CLS-LOC/{train,val} +
# Annotations/CLS-LOC/{train,val} (the LOC_* download), or {train,val}/ + bbox/{train,val}/
# (the ILSVRC-2012 bbox tarballs).
#
# From the paper: initialised from the classification net of the same training scale (all
# layers but fc8, which starts random), Euclidean loss, lr 1e-3 (for 256 images per step,
# scaled with the batch as every config), the rest of Sect. 3.1's SGD recipe and
# augmentation, at a fixed S (no scale jittering for the localisation nets). Not in the
# paper, chosen here: the schedule length (the plateau schedule on the validation box error,
# at most 74 epochs) and the box rules of docs/localisation.md (crops keep >= 50 % of a box).
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
