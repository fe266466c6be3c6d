from setuptools import find_packages, setup

setup(
    name="vggkit-voc",
    version="0.1.0",
    description="vggkit transfer tasks: PASCAL VOC-2007 / VOC-2012 classification and VOC-2012 "
                "action classification (VGG paper, Appendix B)",
    packages=find_packages(),
    python_requires=">=3.10",
    install_requires=["vggkit", "numpy"],
    entry_points={"vggkit": ["voc = vggkit_voc.plugin"]},
)
