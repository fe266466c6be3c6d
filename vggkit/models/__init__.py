"""Sect. 2 of the paper: the VGG configurations A-E, their head and its dense view,
the initialisation schemes of Sect. 3.1, and conversion of published weights."""
from vggkit.models.init import InitReport, init_from_checkpoint, initialize
from vggkit.models.io import load_checkpoint, read_checkpoint, save_checkpoint
from vggkit.models.preprocess import DEFAULT_PREPROCESS, normalize
from vggkit.models.vgg import ALIASES, CONFIGS, VGG, VGGHead, build_vgg, known_archs

__all__ = ["ALIASES", "CONFIGS", "DEFAULT_PREPROCESS", "InitReport", "VGG", "VGGHead",
           "build_vgg", "init_from_checkpoint", "initialize", "known_archs", "load_checkpoint",
           "normalize", "read_checkpoint", "save_checkpoint"]
