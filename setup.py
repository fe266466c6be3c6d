"""vggkit: VGG networks (Simonyan & Zisserman, ICLR 2015) as a plugin-based toolkit."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="vggkit",
    version="0.1.0",
    description="Very deep convolutional networks (VGG) end to end: train A-E, the paper's "
                "test protocols, and fc7 features with linear-SVM transfer, as pluggy plugins.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
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
        "protobuf>=4.21",
        "safetensors>=0.4",
    ],
    extras_require={
        # the fastest CPU inference/extraction path (vggkit.inference)
        "fast": ["onnx>=1.15", "onnxruntime>=1.17"],
        # tests exercise every backend, and timm's key layout for conversion
        "dev": ["pytest>=7", "timm>=1.0", "onnx>=1.15", "onnxruntime>=1.17"],
        "bench": ["timm>=1.0", "onnx>=1.15", "onnxruntime>=1.17"],
    },
    entry_points={"console_scripts": ["vggkit = vggkit.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
