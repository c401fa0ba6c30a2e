#!/usr/bin/env python3
"""Validate rendered manifests (`kubectl kustomize ... | validate.py -k 1.28 -`) against
their schemas, strictly (an unknown field is an error), the Prometheus Operator's CRDs
included. .ci/run runs it on every variant.

    pip install kubernetes-validate==1.37.0 cloudcoil==0.6.0 cloudcoil.models.prometheus_operator==0.80.1.0
    kubectl kustomize deploy/kubernetes | deploy/kubernetes/validate.py -k 1.28 -k 1.37 -
    validate.py --single RENDERED            # one replica, no shard flag
    validate.py --sharded SHARDS RENDERED    # replicas and $(POD_INDEX)/N, N from the Shards file
    validate.py --rule-groups RENDERED       # the PrometheusRule's spec, as JSON for promtool

- Built-in kinds: the Kubernetes OpenAPI schemas that `kubernetes-validate` ships, strict
  variant, for each -k version.
- ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1): the JSON schema of the
  CRD's models in `cloudcoil.models.prometheus_operator` (generated from the Prometheus
  Operator's CRDs, v0.80.1), made strict the way kubeconform makes CRD schemas strict:
  every object that lists its properties refuses others.
- A kind with no schema is an error, not a warning: nothing passes unchecked.
- Each object is also validated once more with an unknown field added to it, which must
  fail, so a schema that accepts anything cannot pass for a check.

Exit 0 when every object passes, 1 otherwise. Prints one line per object.
"""

import argparse
import copy
import json
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv

CRD_MODELS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "ServiceMonitor",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "PrometheusRule",
}


def strict(schema):
    """Refuse properties a schema does not list, at every level."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def crd_validator(model_name):
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, model_name)
    schema = strict(model.model_json_schema(by_alias=True, mode="validation"))
    # The models make apiVersion and kind optional (they default them); a manifest
    # must say them.
    schema.setdefault("required", [])
    schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata", "spec"})
    return jsonschema.Draft202012Validator(schema)


def describe(error):
    """The deepest reason (inside anyOf and the like), with its path, on one short line."""
    e = jsonschema.exceptions.best_match([error])
    while e.context:
        e = jsonschema.exceptions.best_match(e.context)
    message = e.message if len(e.message) <= 200 else e.message[:200] + "..."
    return "%s: %s" % (".".join(map(str, e.absolute_path)) or "(top)", message)


def check(obj, versions, crds):
    """Error messages for one object, empty when it passes everywhere."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_MODELS:
        if key not in crds:
            crds[key] = crd_validator(CRD_MODELS[key])
        return [describe(e) for e in crds[key].iter_errors(obj)][:5]
    problems = []
    for version in versions:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            problems.append("Kubernetes %s: %s" % (version, describe(e)))
        except kv.SchemaNotFoundError as e:
            problems.append("no schema: %s" % e.message)
    return problems


def load(path):
    text = sys.stdin.read() if path == "-" else open(path).read()
    return [o for o in yaml.safe_load_all(text) if o]


def the(objects, kind):
    found = [o for o in objects if o.get("kind") == kind]
    if len(found) != 1:
        raise SystemExit("error: %d objects of kind %s, expected one" % (len(found), kind))
    return found[0]


def shard_of(objects):
    """The StatefulSet's replicas and the value of its shard variable (None: unset)."""
    sts = the(objects, "StatefulSet")
    (c,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "wolkvox-exporter"]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    return sts["spec"]["replicas"], env.get("WOLKVOX_EXPORTER_SHARD")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", "--kubernetes-version", action="append", dest="versions")
    p.add_argument("--single", action="store_true", help="check: one replica, no shard")
    p.add_argument("--sharded", metavar="SHARDS", help="check: N replicas, I/N, N from this Shards file")
    p.add_argument("--rule-groups", action="store_true", help="print the PrometheusRule's spec as JSON")
    p.add_argument("file", help="rendered manifests, - for stdin")
    args = p.parse_args()
    objects = load(args.file)
    if args.single:
        replicas, shard = shard_of(objects)
        if (replicas, shard) != (1, None):
            raise SystemExit("error: %s: replicas %s, shard %r; expected 1 and none" % (args.file, replicas, shard))
        print("single: 1 replica, no shard")
        return 0
    if args.sharded:
        n = the(load(args.sharded), "Shards")["spec"]["count"]
        replicas, shard = shard_of(objects)
        if (replicas, shard) != (n, "$(POD_INDEX)/%d" % n):
            raise SystemExit("error: %s: replicas %s, shard %r; expected %d and $(POD_INDEX)/%d" % (args.file, replicas, shard, n, n))
        print("sharded: %d replicas, WOLKVOX_EXPORTER_SHARD=%s" % (replicas, shard))
        return 0
    if args.rule_groups:
        json.dump(the(objects, "PrometheusRule")["spec"], sys.stdout, indent=1)
        return 0
    if not args.versions:
        p.error("give -k VERSION (one or more)")
    if not objects:
        print("error: no objects to validate", file=sys.stderr)
        return 1
    crds = {}
    failed = 0
    for obj in objects:
        name = "%s/%s" % (obj.get("kind"), (obj.get("metadata") or {}).get("name"))
        problems = check(obj, args.versions, crds)
        # The same object with a field no schema has, at the top and in spec: must fail.
        for where in ("top", "spec"):
            bad = copy.deepcopy(obj)
            target = bad if where == "top" else bad.get("spec")
            if not isinstance(target, dict):
                continue  # a ConfigMap or Secret has no spec
            target["notAField"] = "x"
            if not check(bad, args.versions, crds):
                problems.append("an unknown field in %s passed: the schema is not strict" % where)
        if problems:
            failed += 1
            for m in problems:
                print("FAIL %s: %s" % (name, m))
        else:
            via = "CRD schema (prometheus-operator v0.80.1)" if (obj.get("apiVersion"), obj.get("kind")) in CRD_MODELS else "Kubernetes %s" % ", ".join(args.versions)
            print("ok   %s (%s)" % (name, via))
    if failed:
        print("%d of %d objects invalid" % (failed, len(objects)))
    else:
        print("all %d objects valid" % len(objects))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
