"""Packaging beyond what pyproject.toml can say: the Prefect shell is kept at the repository's
top level (flows/, tasks/, deployments/) but installed under the project's own package, as
``attentive_sync.flows`` and so on, so nothing named ``flows`` lands in site-packages."""

from setuptools import find_packages, setup

SHELL = {f"attentive_sync.{name}": name for name in ("flows", "tasks", "deployments")}

setup(
    packages=find_packages("src") + list(SHELL),
    package_dir={"": "src", **SHELL},
)
