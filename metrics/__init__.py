"""Evaluation (docs/metrics.md): FVD with the StyleGAN-V protocol, colour similarity, LPIPS curves.

i3d.py              the FVD detector (Inception-I3D, Kinetics-400) and its preprocessing
weights.py          offline weight files: locating, sha256 checks, restricted unpickling
frechet.py          float64 feature statistics and the Fréchet distance
sources.py          real clips (datasets, mp4 folders) and generated clips (network wrappers)
fvd.py              FVD protocols and the real-statistics cache
lpips_curves.py     LPIPS (offline backbones), LPIPS to frame 0 and between frames
color_similarity.py histogram-intersection colour similarity against frame 0
curves.py           mean ± std curves, their gap, PNG plots
registry.py         metric names -> computations; `compute(name, MetricContext)`
cli.py              lvg-metrics
"""
