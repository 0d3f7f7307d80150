"""Packaging beyond what pyproject.toml can say: the Prefect shell is kept at the repository's
top level (flows/, tasks/, deployments/) but installed under the project's own package, as
``attentive_sync.flows`` and so on, so nothing named ``flows`` lands in site-packages."""

from setuptools import find_namespace_packages, setup

SHELL = {f"attentive_sync.{name}": name for name in ("flows", "tasks", "deployments")}

# Every folder under src/ is a package, data-only ones too (the emulator's schemas, the
# migrations), so setuptools ships their files as package data without a warning.
setup(
    packages=find_namespace_packages("src", exclude=["*.__pycache__"]) + list(SHELL),
    package_dir={"": "src", **SHELL},
)
