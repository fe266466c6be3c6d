# The demo config (`make demo`): configs/tiny/vgg_a_tiny.py on scikit-learn's
# digits upscaled to 64x64 (net A at 1/4 width, 128-wide FC layers, 32-pixel
# crops from S in [32, 48], the paper's SGD recipe with its lr scaled to 16
# images per step), trained a little longer than the quick start.
_base_ = ['./vgg_a_tiny.py']
train_cfg = dict(max_epochs=15)
