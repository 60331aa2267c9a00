"""dcg_tf: Deep Candidate Generation for TensorFlow."""

import setuptools

setuptools.setup(
    name="dcg_tf",
    version="0.1.0",
    description=("Keras model zoo for deep candidate generation: two-tower "
                 "retrieval, CLRec, SSL-CFM, MicRec, PCL-AISL, Faiss serving."),
    packages=setuptools.find_packages(include=["dcg_tf", "dcg_tf.*",
                                               "experiments", "experiments.*"]),
    package_data={"experiments": ["configs/*.cfg"]},
    python_requires=">=3.10",
    install_requires=[
        # TF 2.21 + tensorflow-recommenders need Keras 2: tf-keras pinned to
        # TensorFlow's minor version (dcg_tf/_keras.py explains).
        "tensorflow==2.21.*",
        "tf-keras==2.21.*",
        "tensorflow-recommenders==0.7.7",
        "numpy",
        "pandas",
        "faiss-cpu",
        "absl-py",
        # TensorBoard logs of training (tf.summary needs it; TF 2.21 no longer
        # installs it): docs/dependencies.md.
        "tensorboard",
        # Plots (degree-bucket histograms, training curves): docs/dependencies.md.
        "matplotlib",
    ],
    # nbclient, nbformat and ipykernel: CI executes docs/notebooks/ with a real
    # Jupyter kernel (tests/test_notebooks.py; docs/dependencies.md).
    extras_require={"test": ["pytest", "nbclient", "nbformat", "ipykernel"]},
)
