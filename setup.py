"""vggkit: VGG networks (Simonyan & Zisserman, ICLR 2015) as a plugin-based toolkit."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# one version: vggkit.__version__, read without importing the package (its deps may be absent)
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "vggkit" / "__init__.py").read_text(
    encoding="utf-8"), re.M)[1]

setup(
    name="vggkit",
    version=VERSION,
    description="Very deep convolutional networks (VGG) end to end: train A-E, the paper's "
                "test protocols, and fc7 features with linear-SVM transfer, as pluggy plugins.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    packages=find_packages(include=["vggkit", "vggkit.*"]),
    include_package_data=True,
    install_requires=[
        "torch>=2.6",
        "torchvision>=0.21",
        "mmengine>=0.10.4,<0.11",
        "mmcv-lite>=2.0,<2.3",
        "pluggy>=1.5",
        "scikit-learn>=1.3",
        "Pillow>=10",
        "numpy>=1.24",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "safetensors>=0.4",
        "filelock>=4.2",  # the OS file locks of the weights cache and feature stores (torch needs it too)
    ],
    extras_require={
        # the fastest CPU inference/extraction path (vggkit.inference)
        "fast": ["onnx>=1.15", "onnxruntime>=1.17"],
        # tests exercise every backend, timm's key layout for conversion, and write
        # .caffemodel files with protobuf (vggkit's Caffe reader decodes the bytes itself)
        "dev": ["pytest>=7", "timm>=1.0", "onnx>=1.15", "onnxruntime>=1.17", "protobuf>=4.21"],
        "bench": ["timm>=1.0", "onnx>=1.15", "onnxruntime>=1.17"],
    },
    entry_points={"console_scripts": ["vggkit = vggkit.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
