# Net C with scale jittering, S in [256, 512] (Tables 3 and 4): all layers fine-tuned from
# the S = 384 model, as configs/vgg16_jitter.py does for D (lr 1e-3: the paper gives none).
_base_ = ['./vgg16_jitter.py']
model = dict(vgg=dict(arch='C'))
load_from = 'work_dirs/vgg16_c_s384/epoch_74.pth'
