"""Notebooks under tests/ are fixtures (tests/browser opens raftlab_app.ipynb in JupyterLab itself), not course
notebooks: keep nbval (``--nbval-lax`` in pyproject.toml) from collecting them. The course is in notebooks/."""

collect_ignore_glob = ["*.ipynb"]  # relative to tests/; fnmatch's * spans folders, so this covers every subfolder
