#!/usr/bin/env python3
"""Fetch an OpenAPI document over HTTP, validate it with the PyPI `openapi-spec-validator`
(an independent validator of the OpenAPI 3.1 specification and its JSON Schema dialect),
and print what it saw as JSON: the version, any validation errors, and each path's methods.

usage: check_openapi.py DOCUMENT_URL
"""
import json
import sys
import urllib.request

from openapi_spec_validator import OpenAPIV31SpecValidator


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=30) as resp:
        doc = json.load(resp)
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in OpenAPIV31SpecValidator(doc).iter_errors()
    ]
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    paths = {
        path: sorted(m for m in item if m in methods)
        for path, item in doc.get("paths", {}).items()
    }
    print(json.dumps({"openapi": doc.get("openapi"), "errors": errors, "paths": paths}))


main()
