# Sect. 2: a VGG net (Table 1) trained with softmax cross-entropy; input minus mean RGB.
imagenet_mean = [123.68, 116.779, 103.939]

model = dict(
    type='VGGClassifier',
    vgg=dict(arch='A', num_classes=1000, dropout=0.5, fc_width=4096, input_size=224,
             init='paper', init_std=0.01),
    data_preprocessor=dict(type='VGGDataPreprocessor', mean=imagenet_mean,
                           std=[1.0, 1.0, 1.0], bgr=False),
)
