"""MkDocs hook: the package's version and repository link, for the site header.

Both are read from the project's files, never typed into mkdocs.yml, so that the site cannot show a
version or a link the package does not have:

- the version from the `__version__ = "..."` line of `keras_adaptive_acts/__init__.py`, parsed by
  `keras_adaptive_acts_cli.version_in_source` rather than imported (importing the package would
  start Keras and TensorFlow, seconds per build);
- the repository link from `setup.cfg`'s `[metadata]`: the `Source` (or `Repository`) entry of
  `project_urls`, else `url`. When neither is set the header shows no link.

The values land in `config.extra.package_version` and `config.repo_url` / `config.repo_name`, which the
header template (docs/overrides/partials/header.html) renders. (Set after MkDocs has read its
configuration, the link adds no "edit this page" buttons, which would need the branch name.)
"""

from __future__ import annotations

import configparser
import logging
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("mkdocs.hooks.package_info")

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_INIT = ROOT / "keras_adaptive_acts" / "__init__.py"
SETUP_CFG = ROOT / "setup.cfg"
# Keys of `project_urls` that name the source repository, in order of preference.
REPOSITORY_KEYS = ("source", "source code", "repository", "code")


def package_version(init_file: Path = PACKAGE_INIT) -> str:
    """The string assigned to `__version__` at the top level of `init_file` (as `kaa --version` reads it)."""
    from keras_adaptive_acts_cli import version_in_source  # the one reader; standard library only

    try:
        return version_in_source(init_file)
    except ValueError as err:
        from mkdocs.exceptions import (
            PluginError,
        )  # here, so that the tests can import this file without MkDocs

        raise PluginError(f"{err}: the site header shows the package's version") from None


def repository_url(setup_cfg: Path = SETUP_CFG) -> str | None:
    """The repository URL declared in `setup_cfg`'s `[metadata]`, or None where it declares none."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(setup_cfg, encoding="utf-8")
    if not parser.has_section("metadata"):
        return None
    metadata = parser["metadata"]
    project_urls = {}
    for line in metadata.get("project_urls", "").splitlines():
        key, separator, value = line.partition("=")
        if separator and value.strip():
            project_urls[key.strip().lower()] = value.strip()
    for key in REPOSITORY_KEYS:
        if key in project_urls:
            return project_urls[key]
    return metadata.get("url", "").strip() or None


def repository_name(url: str) -> str:
    """The label of the header's link: the repository's name (the URL's last path part), else the host.

    Not "owner/name": the header has room for about 25 characters before it cuts the label.
    """
    parts = urlsplit(url)
    path = parts.path.strip("/").removesuffix(".git")
    return path.rsplit("/", 1)[-1] if path else parts.netloc or url


def on_config(config):
    version = package_version()
    config.extra["package_version"] = version
    url = repository_url()
    if config.repo_url:
        # One place for the URL: a second one in mkdocs.yml would drift from the package's metadata.
        log.warning(
            "mkdocs.yml sets repo_url; declare the repository in setup.cfg instead "
            "([metadata] project_urls `Source = ...` or url), where the package's metadata reads it too"
        )
    elif url:
        config.repo_url = url
        config.repo_name = repository_name(url)
    else:
        log.info("setup.cfg declares no repository URL (url or project_urls): the header shows no link")
    return config
