"""The packages depend on each other one way (docs/architecture.md#packages): torch_utils at the
bottom; networks on it; datasets on both; training, generation and metrics on those."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch_utils", "networks", "datasets", "training", "generation", "metrics")
ALLOWED = {
    "torch_utils": set(),
    "networks": {"torch_utils"},
    "datasets": {"torch_utils", "networks"},  # curation: the I3D network (clip embeddings)
    "training": {"torch_utils", "networks", "datasets", "metrics"},  # metrics: --metric
    # generation/projection.py: the LPIPS loss of lvg-metrics, the clip reader of lvg-dataset
    "generation": {"torch_utils", "networks", "datasets", "metrics"},
    "metrics": {"torch_utils", "networks", "datasets"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def test_no_package_imports_upward_or_sideways():
    wrong = [
        f"{path.relative_to(ROOT)} imports {other}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for other in sorted(imported_packages(path) - ALLOWED[package] - {package})
    ]
    assert not wrong, wrong


def test_the_check_sees_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom datasets.shards import VideoDataset\nimport networks.load\n")
    assert imported_packages(module) == {"datasets", "networks"}
