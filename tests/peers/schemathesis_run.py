#!/usr/bin/env python3
"""Run PyPI `schemathesis` (`st run`, pinned in requirements.txt) against a live server's
OpenAPI document, for one pass of tests/server/schemathesis.rs: one bearer token, the
operations its filters select, and fixed values for path parameters where the seed has a
real resource (so answers are the seeded film's, order's, … and not only 404s).

usage: schemathesis_run.py SPEC_JSON WORKDIR
SPEC_JSON: {"schema": url, "base_url": url, "token": str | null, "max_examples": int,
            "checks": [str], "include_path_regex": str | null,
            "exclude_path_regex": str | null, "include_operation_ids": [str],
            "exclude_operation_ids": [str],
            "parameters": [{"path_regex": str, "values": {name: value}}],
            "rejection_statuses": [{"path_regex": str, "statuses": [int | str]}]}
Runs in WORKDIR (its config file, cache and reports go there); schemathesis's output goes
to this process's stdout and its exit code is this one's.
"""
import json
import os
import sys

import schemathesis
from schemathesis.cli import schemathesis as cli

PINNED = "4.32.5"


def toml_str(s):
    return json.dumps(s)


def main():
    spec = json.loads(sys.argv[1])
    work = sys.argv[2]
    version = getattr(schemathesis, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("schemathesis")
    if version != PINNED:
        print(f"schemathesis {version} installed, {PINNED} pinned", file=sys.stderr)
        return 2

    # Path parameters fixed per operation group: TOML `[[operations]]` tables.
    lines = []
    for group in spec.get("parameters", []):
        lines.append("[[operations]]")
        lines.append(f"include-path-regex = {toml_str(group['path_regex'])}")
        values = ", ".join(
            f"{toml_str('path.' + k)} = {toml_str(v)}" for k, v in group["values"].items()
        )
        lines.append(f"parameters = {{ {values} }}")
        lines.append("")
    # Statuses that count as refusing an invalid request, where a protocol names its own
    # (tus answers a missing or other `Tus-Resumable` 412).
    for group in spec.get("rejection_statuses", []):
        lines.append("[[operations]]")
        lines.append(f"include-path-regex = {toml_str(group['path_regex'])}")
        statuses = ", ".join(toml_str(str(s)) for s in group["statuses"])
        lines.append(f"checks.negative_data_rejection.expected-statuses = [{statuses}]")
        lines.append("")
    config = os.path.join(work, "schemathesis.toml")
    with open(config, "w") as f:
        f.write("\n".join(lines))

    args = [
        "--config-file",
        config,
        "--no-color",
        "run",
        spec["schema"],
        "--url",
        spec["base_url"],
        "--checks",
        ",".join(spec["checks"]),
        "--max-examples",
        str(spec["max_examples"]),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        str(spec.get("seed", 18)),
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "too_slow,filter_too_much",
        "--max-redirects",
        "0",
        "--warnings",
        "off",
    ]
    if spec.get("token"):
        args += ["--header", f"Authorization: Bearer {spec['token']}"]
    if spec.get("include_path_regex"):
        args += ["--include-path-regex", spec["include_path_regex"]]
    if spec.get("exclude_path_regex"):
        args += ["--exclude-path-regex", spec["exclude_path_regex"]]
    for op in spec.get("include_operation_ids", []):
        args += ["--include-operation-id", op]
    for op in spec.get("exclude_operation_ids", []):
        args += ["--exclude-operation-id", op]
    # tus PATCH bodies are bytes like application/octet-stream's.
    schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
    os.chdir(work)
    sys.stdout.flush()
    try:
        cli.main(args=args, prog_name="st")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


sys.exit(main())
