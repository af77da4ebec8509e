"""Parses an OpenMetrics exposition (the file named by argv[1]) with the Prometheus
project's Python client (prometheus-client), an independent and strict parser (it rejects a
missing `# EOF`, a counter sample without `_total`, bad escaping, …), and prints the
families as JSON: {name: {"type": …, "samples": [{"name", "labels", "value"}]}}."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()

families = {}
for family in text_string_to_metric_families(text):
    families[family.name] = {
        "type": family.type,
        "samples": [
            {"name": s.name, "labels": dict(s.labels), "value": s.value}
            for s in family.samples
        ],
    }
print(json.dumps(families))
