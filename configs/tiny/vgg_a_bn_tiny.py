# vgg_a_tiny.py with BatchNorm after every conv (torchvision's vgg11_bn layout).
#   python tools/train.py configs/tiny/vgg_a_bn_tiny.py --data-root DIR
# The one departure from vgg_a_tiny.py, and so from the paper, which predates
# BatchNorm: Sect. 3.1 trains A from random init and pre-initialises the deeper
# nets from it; BN makes that unnecessary. Everything else is vgg_a_tiny.py's (its
# header says why each differs from the paper). On CIFAR-10 (1,000 images per class,
# 10 epochs, seeds 0/1) it reached 38.2/36.8 % top-1 error, the plain PyTorch BN loop
# 39.6/38.5 %, vgg_a_tiny.py 42.5/41.4 % (docs/natural_images.md): the config to start
# from on a new folder of photos about the crop's size. Against that loop:
#   python benchmarks/bench_cifar.py --data-root CIFAR_ROOT --only plain_bn bn_tiny
_base_ = ['./vgg_a_tiny.py']

model = dict(vgg=dict(batch_norm=True))
