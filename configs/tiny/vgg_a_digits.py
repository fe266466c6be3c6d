# The demo config (`make demo`): configs/tiny/vgg_a_tiny.py on scikit-learn's
# digits upscaled to 64x64 (net A at 1/4 width, 128-wide FC layers, 32-pixel
# crops of the image rescaled to 32 with a 4-pixel border, SGD at 0.2 per 256
# images scaled to 16, the one-cycle lr and momentum), trained a little longer
# than the quick start; the cycle follows the 15 epochs.
_base_ = ['./vgg_a_tiny.py']
train_cfg = dict(max_epochs=15)
