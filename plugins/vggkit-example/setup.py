from setuptools import setup

setup(
    name="vggkit-example",
    version="0.1.0",
    description="Template vggkit plugin: registers the RandomGrayscale transform.",
    packages=["vggkit_example"],
    python_requires=">=3.10",
    install_requires=["vggkit"],
    # The group 'vggkit' is how vggkit finds plugins; the entry point's name
    # ('example') is the plugin's name: its components are 'example.<Name>'.
    entry_points={"vggkit": ["example = vggkit_example.plugin"]},
)
