"""Shared pieces of check-compose.py: the file names, pass/fail bookkeeping and the parsers."""

import fnmatch
import json
import os
import re
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMPOSE = "docker-compose.yml"
DOCKERFILE = "Dockerfile"
CONF = "fluent-bit.conf"
YAML_CONF = "fluent-bit.yaml"
TASK_DEF = "examples/ecs-task-definition.json"
PLUGINS_CONF = "docker/plugins.conf"
IMAGE_CONF = "docker/datadog_logs.conf"

PLUGIN_NAME = "datadog_logs"
PLUGIN_PATH = "/fluent-bit/plugins/datadog_logs.so"
PLUGINS_FILE_PATH = "/fluent-bit/plugins/plugins.conf"
IMAGE_CONF_PATH = "/fluent-bit/plugins/datadog_logs.conf"
FIRELENS_CONF_PATH = "/fluent-bit/etc/fluent-bit.conf"
AWS_GO_PLUGINS = ["/fluent-bit/firehose.so", "/fluent-bit/cloudwatch.so", "/fluent-bit/kinesis.so"]
AFB_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit"
# Pinned aws-for-fluent-bit tags: 3.x (the default) and 2.x (end of life, a documented build arg).
AFB_3X_TAG = re.compile(r"3\.\d+\.\d+")
AFB_2X_TAG = re.compile(r"2\.\d+\.\d+(?:\.\d{8})?")
BUILD_ARG_RE = re.compile(r"AWS_FOR_FLUENT_BIT_TAG=([0-9][0-9.]*[0-9])")
README = "README.md"

FAILURES = []
PASSED = []


def fail(msg):
    FAILURES.append(msg)


def check(cond, ok_msg, fail_msg):
    if cond:
        PASSED.append(ok_msg)
    else:
        fail(fail_msg)
    return cond


def path(rel):
    return os.path.join(ROOT, rel)


def read(rel):
    with open(path(rel), encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------------------- compose variables

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def compose_default(text):
    """Interpolates a compose value as if no variable were set (so defaults apply)."""
    if not isinstance(text, str):
        return text

    def sub(m):
        if m.group(2) is not None:
            return m.group(3)
        return ""

    return VAR_RE.sub(sub, text.replace("$$", "\0")).replace("\0", "$")


def env_dict(environment):
    if environment is None:
        return {}
    if isinstance(environment, dict):
        return {k: "" if v is None else str(v) for k, v in environment.items()}
    out = {}
    for item in environment:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


# --------------------------------------------------------------------------------- Dockerfile

class Dockerfile:
    def __init__(self, text):
        self.instructions = []  # (stage index, INSTRUCTION, args)
        self.stages = []  # {"name", "from", "index"}
        self.global_args = {}
        lines = []
        buf = ""
        for raw in text.splitlines():
            line = raw.rstrip()
            if not buf and (line.lstrip().startswith("#") or not line.strip()):
                continue
            if buf and line.lstrip().startswith("#"):
                continue  # comment inside a continuation
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            lines.append(buf + line)
            buf = ""
        if buf:
            lines.append(buf)
        stage = -1
        for line in lines:
            parts = line.strip().split(None, 1)
            instr = parts[0].upper()
            args = parts[1] if len(parts) > 1 else ""
            if instr == "FROM":
                words = [w for w in args.split() if not w.startswith("--")]
                name = None
                if len(words) >= 3 and words[1].lower() == "as":
                    name = words[2]
                stage += 1
                self.stages.append({"name": name, "from": words[0] if words else "", "index": stage})
            elif instr == "ARG" and stage < 0:
                k, _, v = args.strip().partition("=")
                self.global_args[k] = v.strip().strip('"')
            self.instructions.append((stage, instr, args))

    def stage_names(self):
        return [s["name"] for s in self.stages if s["name"]]

    def stage(self, name):
        for s in self.stages:
            if s["name"] == name:
                return s
        return None

    def in_stage(self, name):
        s = self.stage(name)
        if s is None:
            return []
        return [(i, a) for (idx, i, a) in self.instructions if idx == s["index"]]

    @staticmethod
    def copy_parts(args):
        """Returns (flags, sources, dest) of a COPY/ADD argument string."""
        args = args.strip()
        flags = {}
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            k, _, v = flag[2:].partition("=")
            flags[k] = v
            args = args.strip()
        if args.startswith("["):
            items = json.loads(args)
        else:
            items = shlex.split(args)
        return flags, items[:-1], items[-1] if items else ""

    @staticmethod
    def exec_form(args):
        args = args.strip()
        if args.startswith("["):
            return json.loads(args)
        return ["/bin/sh", "-c", args]


def dockerignore_patterns():
    p = path(".dockerignore")
    if not os.path.exists(p):
        return []
    pats = []
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = line[1:] if neg else line
            pat = os.path.normpath(pat.lstrip("/"))
            pats.append((neg, pat))
    return pats


def ignored(rel, patterns):
    """Approximates Docker's .dockerignore matching (last matching pattern wins; a pattern that
    matches a parent directory excludes everything under it)."""
    rel = os.path.normpath(rel)
    parts = rel.split(os.sep)
    prefixes = [os.sep.join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for neg, pat in patterns:
        for cand in prefixes:
            if fnmatch.fnmatchcase(cand, pat) or (
                pat.startswith("**" + os.sep) and fnmatch.fnmatchcase(cand, pat[3:])
            ) or (pat.startswith("**" + os.sep) and fnmatch.fnmatchcase(os.path.basename(cand), pat[3:])):
                result = not neg
                break
    return result


_WALK = None


def walk_rel():
    global _WALK
    if _WALK is None:
        _WALK = []
        for d, dirs, files in os.walk(ROOT):
            dirs[:] = [x for x in dirs if x not in (".git", "target")]
            for f in files + dirs:
                _WALK.append(os.path.relpath(os.path.join(d, f), ROOT))
    return _WALK


# ------------------------------------------------------------------------ Fluent Bit configs

def parse_classic(text, source):
    """Returns [(section, [(key, value), ...]), ...] of a classic-format Fluent Bit config."""
    sections = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            sections.append((line.split()[0].upper(), [("value", line.partition(" ")[2].strip())]))
            continue
        m = re.fullmatch(r"\[([A-Za-z_]+)\]", line)
        if m:
            sections.append((m.group(1).upper(), []))
            continue
        if not sections:
            raise ValueError(f"{source}:{n}: `{line}` is outside any [SECTION]")
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{source}:{n}: `{line}` has no value")
        sections[-1][1].append((parts[0], parts[1].strip()))
    return sections


def first(pairs, key):
    for k, v in pairs:
        if k.lower() == key:
            return v
    return None


def output_keys(pairs):
    """The keys of an output but `Name`, lowercased (Fluent Bit reads them case-insensitively)."""
    return {k.lower(): v for k, v in pairs if k.lower() != "name"}
