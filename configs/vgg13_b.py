# Net B (13 weight layers), S = 256. Sect. 3.1: the first four conv layers and
# the three FC layers start from a trained net A, the rest is random.
# Train configs/vgg11_a.py first (or point net_a_checkpoint elsewhere).
_base_ = ['./vgg11_a.py']
net_a_checkpoint = 'work_dirs/vgg11_a/epoch_74.pth'
model = dict(vgg=dict(arch='B', init='from_checkpoint', init_checkpoint=net_a_checkpoint,
                      init_conv_layers=4, init_fc_layers=3))
