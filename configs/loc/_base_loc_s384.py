# Appendix A at S = 384: _base_loc.py with the training scale 384 and the classifier trained
# at S = 384 (configs/vgg16_d_s384.py), since the paper initialises each localisation net from
# the classification net of its own scale. Table 8's rows are at this scale; validation is
# the centre crop at Q = 384, Table 8's protocol.
_base_ = ['./_base_loc.py']

classifier_checkpoint = 'work_dirs/vgg16_d_s384/epoch_74.pth'
train_scale = 384

model = dict(vgg=dict(init_checkpoint=classifier_checkpoint))
# a config's lists replace its base's whole: both pipelines again, at the new scale
train_pipeline = [
    dict(type='LoadBoxImage'),
    dict(type='BoxRandomScaleCrop', scale=train_scale, crop={{_base_.crop_size}},
         min_visible=0.5, max_tries=10),
    dict(type='BoxRandomFlip', prob=0.5), dict(type='PCALighting', std=0.1),
    dict(type='PackBoxInputs'),
]
val_pipeline = [dict(type='LoadBoxImage'),
                dict(type='BoxTestRescale', scale=train_scale, crop={{_base_.crop_size}}),
                dict(type='PackBoxInputs')]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
