"""The docs site: an API entry for every public name, the header's version taken from the package, and
the rendered-page check (docs/scripts/check_rendered_pages.py) failing on clipped and missing content.

The browser tests need Chromium (`apt-get install chromium`) and skip, saying so, without it; the
end-to-end one also needs MkDocs (the `docs` extra).
"""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras_adaptive_acts

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "keras_adaptive_acts"

# Modules whose `__all__` is the public API, each name of which has an entry in docs/api/.
# (`model_graph`'s `__all__` also lists the plumbing that measurement, the monitors and surgery
# share; its page documents the three walks meant for users.)
PUBLIC_MODULES = (
    "__init__.py",
    "layers/__init__.py",
    "ops/__init__.py",
    "regularizers.py",
    "callbacks/__init__.py",
    "measurement.py",
    "registry.py",
    "surgery.py",
    "tuning.py",
    "export/__init__.py",
    "compare/__init__.py",
    "narrow/__init__.py",
)


def load_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


check = load_file(DOCS / "scripts" / "check_rendered_pages.py")
hook = load_file(DOCS / "hooks" / "package_info.py")


def module_all(path: Path) -> list[str]:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path} has no __all__")


def needs_chromium() -> str:
    browser = check.find_browser(None)
    if browser is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set $CHROMIUM): the check cannot run")
    return browser


# ----------------------------------------------------------------------------------------------
# The API pages


def test_every_public_name_has_an_api_entry():
    pages = {page.name: page.read_text(encoding="utf-8") for page in (DOCS / "api").glob("*.md")}
    documented = {
        identifier.rsplit(".", 1)[-1]
        for text in pages.values()
        for identifier in re.findall(r"^:::\s+([\w.]+)", text, flags=re.MULTILINE)
    }
    missing = []
    for relative in PUBLIC_MODULES:
        for name in module_all(PACKAGE / relative):
            submodule = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
            if name == "__version__":
                assert "__version__" in pages["index.md"]
            elif submodule:
                assert f"keras_adaptive_acts.{name}" in "".join(pages.values()), name
            elif name not in documented:
                missing.append(f"{relative}: {name}")
    assert not missing, f"public names without an entry in docs/api/: {missing}"


def test_every_api_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (DOCS / "api").glob("*.md"):
        assert f"api/{page.name}" in nav, page.name


# ----------------------------------------------------------------------------------------------
# The header's version and repository link (docs/hooks/package_info.py)


def test_header_version_is_the_package_version():
    assert hook.package_version() == keras_adaptive_acts.__version__


def test_repository_link_comes_from_setup_cfg(tmp_path):
    setup_cfg = tmp_path / "setup.cfg"
    setup_cfg.write_text("[metadata]\nname = x\n")
    assert hook.repository_url(setup_cfg) is None
    setup_cfg.write_text("[metadata]\nurl = https://example.org/home\n")
    assert hook.repository_url(setup_cfg) == "https://example.org/home"
    setup_cfg.write_text(
        "[metadata]\nurl = https://example.org/home\nproject_urls =\n"
        "    Documentation = https://example.org/docs\n    Source = https://github.com/owner/repo.git\n"
    )
    assert hook.repository_url(setup_cfg) == "https://github.com/owner/repo.git"
    assert hook.repository_name("https://github.com/owner/repo.git") == "repo"
    assert hook.repository_name("https://example.org/") == "example.org"


# ----------------------------------------------------------------------------------------------
# The rendered-page check

LONG_LINE = "x = " + " + ".join(f"value_{i}" for i in range(40))
PAGE = "<!doctype html><html><head><style>{style}</style></head><body>{body}</body></html>"
SYNTHETIC_PAGES = {
    # A wide code block that scrolls with a scrollbar the page draws itself: nothing is cut.
    "good.html": (
        "pre { overflow-x: auto; width: 600px } pre::-webkit-scrollbar { height: 8px } "
        "pre::-webkit-scrollbar-thumb { background: #888 }",
        f"<article><h1>Good</h1><pre>{LONG_LINE}</pre></article>",
    ),
    "hidden.html": (
        "pre { overflow: hidden; width: 600px }",
        f"<article><h1>Hidden</h1><pre>{LONG_LINE}</pre></article>",
    ),
    "overlay.html": (
        "pre { overflow: auto; width: 600px }",
        f"<article><h1>Overlay</h1><pre>{LONG_LINE}</pre></article>",
    ),
    "wide.html": ("", '<article><h1>Wide</h1><div class="banner" style="width: 2000px">wide</div></article>'),
    "no-heading.html": ("", "<article><p>No heading here.</p></article>"),
}


def run_check(capsys, *args) -> tuple[int, str]:
    status = check.main([str(arg) for arg in args])
    return status, capsys.readouterr().out


def test_check_fails_on_clipped_and_missing_content(tmp_path, capsys):
    browser = needs_chromium()
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE.format(style="", body="<h1>Home</h1>"))
    for name, (style, body) in SYNTHETIC_PAGES.items():
        (site / name).write_text(PAGE.format(style=style, body=body))
    pages = [*SYNTHETIC_PAGES, "absent.html"]
    page_args = [arg for page in pages for arg in ("--page", page)]
    status, out = run_check(
        capsys,
        site,
        *page_args,
        "--screenshots",
        tmp_path / "shots",
        "--docs-dir",
        tmp_path / "no-sources",
        "--expect-version",
        "",
        "--chromium",
        browser,
    )
    print(out)
    assert status == 1
    lines = out.splitlines()
    assert "ok   /good.html at 1280 px" in out
    expected = {
        "/hidden.html": "clipped: body > article > pre",
        "/overlay.html": "draws no visible scrollbar",
        "/wide.html": "past the right edge: body > article > div.banner",
        "/no-heading.html": "missing: the page has no main heading",
        "/absent.html": "missing: the server answered 404",
    }
    for page, message in expected.items():
        assert any(line.strip().startswith(f"{page}: ") and message in line for line in lines), (
            page,
            message,
        )
    assert "1 of 6 pages passed" in out
    for name in SYNTHETIC_PAGES:
        assert (tmp_path / "shots" / name.replace(".html", ".html.png")).read_bytes().startswith(b"\x89PNG")


def test_check_skips_without_a_browser(tmp_path, capsys, monkeypatch):
    (tmp_path / "index.html").write_text(PAGE.format(style="", body="<h1>Home</h1>"))
    monkeypatch.setattr(check, "find_browser", lambda explicit: None)
    status, out = run_check(capsys, tmp_path, "--skip-without-browser")
    assert status == 0 and out.startswith("SKIPPED: the rendered-page check did not run: no Chromium found")
    status, _ = run_check(capsys, tmp_path)
    assert status == 2


@pytest.mark.slow
def test_built_site_passes_and_a_broken_copy_fails(tmp_path, capsys):
    browser = needs_chromium()
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("MkDocs is not installed (the `docs` extra): the site cannot be built")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    status, out = run_check(capsys, site, "--screenshots", tmp_path / "shots", "--chromium", browser)
    assert status == 0, out
    shots = {re.sub(r"-\d+$", "", path.stem) for path in (tmp_path / "shots").glob("*.png")}
    assert shots == {page.strip("/").replace("/", "_") or "index" for page in check.DEFAULT_PAGES}

    # The same site with code blocks that cut their lines instead of scrolling.
    with (site / "stylesheets" / "extra.css").open("a") as css:
        css.write("\n.md-typeset pre > code { overflow: hidden !important }\n")
    status, out = run_check(capsys, site, "--chromium", browser)
    print(out)
    assert status == 1
    assert re.search(
        r"^\s+/: clipped: div\.highlight > pre#__code_\d+ > code under the heading", out, re.MULTILINE
    )
    assert "/layers/competitive-relu/: clipped:" in out
