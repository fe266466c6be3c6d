# Net A-LRN: A with AlexNet's local response normalisation after conv1 (Table 1).
_base_ = ['./vgg11_a.py']
model = dict(vgg=dict(arch='A-LRN'))
