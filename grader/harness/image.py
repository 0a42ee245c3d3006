"""What the grading image brings besides the standard library: packages a learner module may not shadow.

The image is Debian's python3 with python3-pytest (sandbox/images/python, scripts/build-sandbox-image.sh);
these are the top-level modules its site-packages hold, and the harness's own scripts. A learner file
with one of these names would replace it for the harness or the tests, so it is left out, with a note
saying why.
"""

IMAGE_PACKAGES = frozenset(
    {
        "pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "attr", "attrs",
        "exceptiongroup", "tomli", "more_itertools", "importlib_metadata", "typing_extensions",
        "zipp", "six", "pkg_resources", "setuptools", "_distutils_hack",
        "remote_modules", "pytest_runner", "call_server", "conftest",
    }
)  # fmt: skip
