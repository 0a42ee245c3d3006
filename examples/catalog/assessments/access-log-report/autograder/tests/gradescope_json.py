"""A unittest runner that writes Gradescope's results.json, after Gradescope's documented format.

Decorators give each test its `weight` (max_score), `number`, `visibility` and `tags`; the runner
prints one results.json document on stdout: a `tests` list with name, score, max_score, status,
number, visibility, tags and output for each test.
"""

import json
import sys
import traceback
import unittest


def _annotate(key, value):
    def decorate(function):
        setattr(function, f"__gradescope_{key}__", value)
        return function

    return decorate


def weight(points):
    return _annotate("weight", points)


def number(text):
    return _annotate("number", text)


def visibility(value):
    return _annotate("visibility", value)


def tags(*names):
    return _annotate("tags", list(names))


class JSONResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.results = []

    def _record(self, test, status, output=""):
        method = getattr(test, test._testMethodName)
        max_score = getattr(method, "__gradescope_weight__", 1)
        entry = {
            "name": method.__doc__.strip().splitlines()[0] if method.__doc__ else test._testMethodName,
            "score": max_score if status == "passed" else 0,
            "max_score": max_score,
            "status": status,
            "output": output,
        }
        for key in ("number", "visibility", "tags"):
            value = getattr(method, f"__gradescope_{key}__", None)
            if value is not None:
                entry[key] = value
        self.results.append(entry)

    def addSuccess(self, test):
        self._record(test, "passed")

    def addFailure(self, test, err):
        self._record(test, "failed", str(err[1]))

    def addError(self, test, err):
        self._record(test, "failed", "".join(traceback.format_exception_only(err[0], err[1])).strip())


def main(module_names):
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromName(name) for name in module_names)
    result = JSONResult()
    suite.run(result)
    json.dump({"tests": result.results, "visibility": "visible"}, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
