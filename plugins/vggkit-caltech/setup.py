from setuptools import find_packages, setup

setup(
    name="vggkit-caltech",
    version="0.1.0",
    description="vggkit transfer tasks: Caltech-101 and Caltech-256 (VGG paper, Appendix B)",
    packages=find_packages(),
    python_requires=">=3.10",
    install_requires=["vggkit", "numpy"],
    entry_points={"vggkit": ["caltech = vggkit_caltech.plugin"]},
)
