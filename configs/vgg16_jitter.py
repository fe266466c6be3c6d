# Net D with scale jittering, S in [256, 512] (Tables 3-5): all layers fine-tuned
# from the S = 384 model. The paper gives no lr for this fine-tuning: 1e-3 as at S = 384.
_base_ = ['./_base_/models/vgg.py', './_base_/datasets/imagenet_jitter.py',
          './_base_/schedules/paper_sgd_finetune.py', './_base_/default_runtime.py']
model = dict(vgg=dict(arch='D'))
load_from = 'work_dirs/vgg16_d_s384/epoch_74.pth'
