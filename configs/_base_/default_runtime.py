# Runtime shared by every vggkit config: hooks, logging, checkpoints, environment.
default_scope = 'vggkit'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic files; a rolling mid-epoch checkpoint every iter_interval iterations
    # (an ImageNet epoch of VGG-16 is hours); best by validation top-1 error
    checkpoint=dict(type='VGGCheckpointHook', interval=1, max_keep_ckpts=3,
                    iter_interval=2000, save_best='top1_error', rule='less'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    dict(type='ResumeHook'),           # exact mid-epoch resume, per-sample seeds
    dict(type='NonFiniteLossHook'),    # stop at once when the loss becomes NaN/inf
    dict(type='TrainingHealthHook'),   # warn on collapse (one-class val, loss at ln K, dead fc7)
    dict(type='ThroughputHook'),       # images/s in the log line
    dict(type='ProgressBarHook'),      # tqdm bar when stderr is a terminal
    dict(type='BadImageSummaryHook'),  # skipped unreadable images, per epoch
    dict(type='TrainingCurvesHook'),   # work_dir/curves.png
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
log_processor = dict(
    window_size=10, by_epoch=True,
    custom_cfg=[dict(data_src='img_per_s', method_name='mean', window_size=10)])
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
