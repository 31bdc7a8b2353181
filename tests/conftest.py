"""Notebooks under tests/ are fixtures (tests/browser opens raftlab_app.ipynb in JupyterLab itself), not course
notebooks: keep nbval (``--nbval-lax`` in pyproject.toml) from collecting them. The course is in notebooks/."""

collect_ignore_glob = ["*.ipynb"]  # relative to tests/; fnmatch's * spans folders, so this covers every subfolder


def pytest_addoption(parser):
    parser.addoption("--rewrite-transcripts", action="store_true", default=False,
                     help="rewrite the expected outputs of raftlab/sim/transcripts/*.txt in place instead of comparing "
                          "them (then review the diff like code; see tests/sim/test_transcripts.py)")
