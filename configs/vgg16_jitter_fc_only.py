# Net D with scale jittering, S in [256, 512], only the FC layers fine-tuned: the
# multi-scale D of the paper's ILSVRC submission (Sect. 4.4; one of Table 6's 7 nets). The
# post-submission D (configs/vgg16_jitter.py) fine-tunes all layers. The paper does not say
# which model this one started from: the S = 384 model, as for vgg16_jitter.py.
_base_ = ['./vgg16_jitter.py']
# lr and weight decay 0 on the conv stack: its weights stay the S = 384 model's
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'vgg.features': dict(lr_mult=0.0, decay_mult=0.0)}))
