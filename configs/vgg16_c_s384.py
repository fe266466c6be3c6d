# Net C at S = 384 (Table 3): all weights from the S = 256 model, lr 1e-3.
_base_ = ['./_base_/models/vgg.py', './_base_/datasets/imagenet_s384.py',
          './_base_/schedules/paper_sgd_finetune.py', './_base_/default_runtime.py']
model = dict(vgg=dict(arch='C'))
load_from = 'work_dirs/vgg16_c/epoch_74.pth'
