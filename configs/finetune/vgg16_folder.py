# Fine-tune published VGG-16 weights on an image folder of your own classes:
#   vggkit train configs/finetune/vgg16_folder.py --data-root DIR --weights vgg16.torchvision
# DIR is DIR/<class>/*.jpg, or DIR/train/<class>/ + DIR/val/<class>/ (docs/finetune.md).
#
# --weights makes the net the weights' (arch, batch norm, widths, crop size), keeps
# conv1_1-fc7 from them, starts a new fc8 sized to the folder's classes (N(0, 0.01^2),
# biases 0) and puts the weights' own mean/std/BGR into the data preprocessor.
#
# The lr is a choice, not the paper's: Sect. 3.1 pre-initialised deeper nets from net A
# on the same ImageNet classes and did NOT lower the lr of the copied layers. Here the
# new fc8 is random while conv1_1-fc7 already fit natural images, and a small folder
# would pull them far from the weights at the new layer's lr; so, as Caffe's
# fine-tuning recipes do, the new fc8 learns at the base lr, the pre-initialised layers
# at a tenth of it (mmengine paramwise_cfg custom_keys, matched by name). The base lr
# is the paper's starting 0.01 per 256 images (scaled linearly to the batch below);
# a cosine over a short run ends it annealed whatever max_epochs is.
_base_ = ['../_base_/models/vgg.py', '../_base_/datasets/imagenet_s256.py',
          '../_base_/schedules/paper_sgd.py', '../_base_/default_runtime.py']

# the ImageNet S = 256 pipelines (224 crops, flips, PCA colour; the torchvision weights'
# own resize), on an image folder instead of ILSVRC's layout
data_root = 'data/my_folder'
total_batch_size = 32
batch_per_gpu = None  # total / number of processes, no accumulation

model = dict(vgg=dict(arch='D', num_classes=None,  # None: the image folder's class count
                      dropout=0.5))
pretrained_lr_mult = 0.1  # conv1_1-fc7, kept from --weights
optim_wrapper = dict(
    accumulative_counts=1, optimizer=dict(lr=0.01),  # per 256 images: fc8's
    paramwise_cfg=dict(custom_keys={
        'vgg.features.': dict(lr_mult=pretrained_lr_mult),
        'vgg.head.fc6.': dict(lr_mult=pretrained_lr_mult),
        'vgg.head.fc7.': dict(lr_mult=pretrained_lr_mult)}))
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0.0, begin=0, by_epoch=True,
                        convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)

train_dataloader = dict(num_workers=2, dataset=dict(dataset=dict(
    _delete_=True, type='ImageFolder', data_root=data_root,
    pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(num_workers=2, dataset=dict(
    _delete_=True, type='ImageFolder', data_root=data_root, pipeline={{_base_.val_pipeline}}))
test_dataloader = val_dataloader

default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))
