"""Runs the autograder's tests and prints results.json (see gradescope_json)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gradescope_json import main

main(["test_log_report"])
