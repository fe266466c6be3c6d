# Net A (11 weight layers), S = 256, trained from random initialisation (Sect. 3.1).
_base_ = ['./_base_/models/vgg.py', './_base_/datasets/imagenet_s256.py',
          './_base_/schedules/paper_sgd.py', './_base_/default_runtime.py']
model = dict(vgg=dict(arch='A'))
