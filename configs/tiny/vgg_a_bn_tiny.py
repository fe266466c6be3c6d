# vgg_a_tiny.py with BatchNorm after every conv (torchvision's vgg11_bn layout):
# the config to start from on a new folder of photos.
#   python tools/train.py configs/tiny/vgg_a_bn_tiny.py --data-root DIR
# The one departure from vgg_a_tiny.py, and so from the paper, which predates
# BatchNorm: Sect. 3.1 trains A from random init and pre-initialises the deeper
# nets from it; BN makes that unnecessary and lowers the error at equal epochs
# (issue 24's plain PyTorch loop on CIFAR-10, 1,000 images per class, 10 epochs:
# 41.6 % without BN, 34.9 % with). Everything else is vgg_a_tiny.py's (its header
# says why each differs from the paper): the one-cycle lr and momentum, pad-4
# crops at S = Q = 32, He init, no dropout, 16 images per step. Against the plain
# BN loop: python benchmarks/bench_cifar.py --data-root CIFAR_ROOT --only plain_bn bn_tiny
# (figures and seeds in docs/natural_images.md).
_base_ = ['./vgg_a_tiny.py']

model = dict(vgg=dict(batch_norm=True))
