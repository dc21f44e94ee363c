#!/usr/bin/env python3
"""Static checks of the container and FireLens files, for CI machines without a Docker engine.

    python3 scripts/check-compose.py                  # run the checks

Checks (every failure is reported, then the exit status is 1):
  - docker-compose.yml: parses; every build context, Dockerfile and build target exists (targets
    as `AS <name>` stages), every bind-mounted file exists, named volumes are declared; the
    FireLens-like wiring: fluent-bit.conf mounted at /fluent-bit/etc/fluent-bit.conf, the app's
    fluentd log driver sends to the published forward port with a tag the datadog_logs output
    matches, the router's health check, and every ${VAR} of fluent-bit.conf set for the router.
  - Dockerfile: stages referenced by --from exist, files COPY'd from the context exist and are
    not excluded by .dockerignore, the base image tag is a pinned 3.x tag, the CMD keeps
    AWS's three -e flags and adds the plugin, nothing is copied under /fluent-bit/etc.
  - fluent-bit.conf (classic) and fluent-bit.yaml: parse, contain one datadog_logs output with
    the same keys, and load the plugin from the path the image installs it at;
    docker/plugins.conf and docker/datadog_logs.conf point at files the image provides.
  - the base tag: the Dockerfile's default 3.x tag is docker-compose.yml's default, is named in
    the README and ends the task definition's log router image tag (-afb<tag>); every
    AWS_FOR_FLUENT_BIT_TAG=<tag> shown in the Dockerfile, compose file and README is that tag or
    the one documented 2.x tag.
  - examples/ecs-task-definition.json: valid JSON with the Fargate, FireLens, health check,
    awslogs, awsfirelens and secretOptions fields the README describes.

Whether each key of a datadog_logs output is a plugin option or a Fluent Bit core key, and
whether the plugin's Init accepts the options, is checked by `cargo test` (tests/examples.rs,
from the option table in src/config/options.rs), not here.

Needs Python 3.8+ and PyYAML (pip install pyyaml).
"""

import argparse
import fnmatch
import json
import os
import re
import signal
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write("check-compose: PyYAML is not installed (pip install pyyaml)\n")
    sys.exit(1)

# The helpers live beside this script (on sys.path as its directory); no __pycache__ is left there.
sys.dont_write_bytecode = True
from check_compose_lib import (  # noqa: E402
    AFB_3X_TAG, AFB_2X_TAG, AFB_IMAGE, AWS_GO_PLUGINS, BUILD_ARG_RE, COMPOSE, CONF, DOCKERFILE,
    FAILURES, FIRELENS_CONF_PATH, IMAGE_CONF, IMAGE_CONF_PATH, PASSED, PLUGIN_NAME, PLUGIN_PATH,
    PLUGINS_CONF, PLUGINS_FILE_PATH, README, TASK_DEF, VAR_RE, YAML_CONF, Dockerfile, check,
    compose_default, dockerignore_patterns, env_dict, fail, first, ignored, output_keys,
    parse_classic, path, read, walk_rel,
)


def check_dockerfile():
    if not os.path.exists(path(DOCKERFILE)):
        fail(f"{DOCKERFILE} does not exist")
        return None
    df = Dockerfile(read(DOCKERFILE))
    names = df.stage_names()
    patterns = dockerignore_patterns()

    # --from= references and files copied from the build context.
    for idx, instr, args in df.instructions:
        if instr not in ("COPY", "ADD"):
            continue
        flags, sources, dest = Dockerfile.copy_parts(args)
        if "from" in flags:
            check(flags["from"] in names or ":" in flags["from"] or "/" in flags["from"],
                  f"Dockerfile: COPY --from={flags['from']} names a stage",
                  f"Dockerfile: COPY --from={flags['from']}: no stage `AS {flags['from']}`")
            continue
        for src in sources:
            if src.startswith(("http://", "https://")):
                continue
            rel = os.path.normpath(src)
            exists = os.path.exists(path(rel)) if not any(c in rel for c in "*?[") else bool(
                [f for f in walk_rel() if fnmatch.fnmatchcase(f, rel)])
            check(exists, f"Dockerfile: COPY source {src} exists",
                  f"Dockerfile: COPY source {src} does not exist in the repository")
            if rel != "." and exists:
                check(not ignored(rel, patterns), f"Dockerfile: {src} is in the build context",
                      f"Dockerfile: COPY source {src} is excluded by .dockerignore")
    # What the plugin build needs must not be excluded from `COPY . .`.
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src/lib.rs", "scripts/release.sh", "include"]:
        if os.path.exists(path(needed)):
            check(not ignored(needed, patterns), f".dockerignore keeps {needed}",
                  f".dockerignore excludes {needed}, which the image build needs")

    # Stages the image needs.
    for name in ("image", "mock-intake"):
        check(name in names, f"Dockerfile: stage {name} exists", f"Dockerfile: no stage `AS {name}`")
    check(names and df.stages[-1]["name"] == "image",
          "Dockerfile: the default (last) stage is `image`",
          "Dockerfile: the last stage should be `image`, so `docker buildx build .` builds the log router image")

    tag = df.global_args.get("AWS_FOR_FLUENT_BIT_TAG", "")
    check(AFB_3X_TAG.fullmatch(tag) is not None,
          f"Dockerfile: base tag pinned to 3.x ({tag})",
          f"Dockerfile: ARG AWS_FOR_FLUENT_BIT_TAG must default to a pinned 3.x tag (2.x is end of life), not `{tag}`")

    image = df.stage("image")
    if image:
        check(image["from"] == AFB_IMAGE + ":${AWS_FOR_FLUENT_BIT_TAG}",
              "Dockerfile: image stage is FROM aws-for-fluent-bit:${AWS_FOR_FLUENT_BIT_TAG}",
              f"Dockerfile: image stage must be FROM {AFB_IMAGE}:${{AWS_FOR_FLUENT_BIT_TAG}}, not {image['from']}")
        dests = {}
        cmd = None
        for instr, args in df.in_stage("image"):
            if instr in ("COPY", "ADD"):
                flags, sources, dest = Dockerfile.copy_parts(args)
                dests[dest] = sources
                check(not dest.startswith("/fluent-bit/etc"), f"Dockerfile: {dest} is outside /fluent-bit/etc",
                      f"Dockerfile: {dest} is under /fluent-bit/etc, which FireLens overwrites")
            if instr == "CMD":
                cmd = Dockerfile.exec_form(args)
        for p in (PLUGIN_PATH, PLUGINS_FILE_PATH, IMAGE_CONF_PATH):
            check(p in dests, f"Dockerfile: image provides {p}", f"Dockerfile: the image stage does not COPY {p}")
        check(dests.get(PLUGINS_FILE_PATH) == [PLUGINS_CONF], f"Dockerfile: {PLUGINS_FILE_PATH} comes from {PLUGINS_CONF}",
              f"Dockerfile: {PLUGINS_FILE_PATH} should be COPY'd from {PLUGINS_CONF}")
        check(dests.get(IMAGE_CONF_PATH) == [IMAGE_CONF], f"Dockerfile: {IMAGE_CONF_PATH} comes from {IMAGE_CONF}",
              f"Dockerfile: {IMAGE_CONF_PATH} should be COPY'd from {IMAGE_CONF}")
        text = " ".join(cmd or [])
        words = text.replace(";", " ").split()
        e_args = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-e"]
        check(e_args[:3] == AWS_GO_PLUGINS and PLUGIN_PATH in e_args,
              "Dockerfile: CMD keeps AWS's three -e flags and adds datadog_logs.so",
              f"Dockerfile: CMD must load {' '.join(AWS_GO_PLUGINS)} and {PLUGIN_PATH} with -e (found: {e_args})")
        check(f"-c {FIRELENS_CONF_PATH}" in text, f"Dockerfile: CMD reads {FIRELENS_CONF_PATH}",
              f"Dockerfile: CMD must read FireLens's {FIRELENS_CONF_PATH}")

    builder_runs_release = any(instr == "RUN" and "scripts/release.sh" in args and "TARGETARCH" in args
                               for _, instr, args in df.instructions)
    check(builder_runs_release, "Dockerfile: a stage runs scripts/release.sh for TARGETARCH",
          "Dockerfile: no RUN of scripts/release.sh picking the architecture from TARGETARCH")
    mock = df.in_stage("mock-intake")
    mock_cmd = " ".join(sum((Dockerfile.exec_form(a) for i, a in mock if i in ("CMD", "ENTRYPOINT")), []))
    check("mock_intake" in mock_cmd and "--print" in mock_cmd and "0.0.0.0:8080" in mock_cmd,
          "Dockerfile: mock-intake runs mock_intake --addr 0.0.0.0:8080 --print",
          f"Dockerfile: mock-intake stage should run mock_intake --addr 0.0.0.0:8080 --print (has: {mock_cmd})")
    return df




def check_classic_conf():
    try:
        sections = parse_classic(read(CONF), CONF)
    except (OSError, ValueError) as e:
        fail(f"{CONF}: {e}")
        return None
    outputs = [p for s, p in sections if s == "OUTPUT" and (first(p, "name") or "").lower() == PLUGIN_NAME]
    if not check(len(outputs) == 1, f"{CONF}: one {PLUGIN_NAME} output",
                 f"{CONF}: expected one [OUTPUT] with Name {PLUGIN_NAME}, found {len(outputs)}"):
        return None
    inputs = [p for s, p in sections if s == "INPUT"]
    filters = [p for s, p in sections if s == "FILTER"]
    service = {k.lower(): v for s, p in sections if s == "SERVICE" for k, v in p}
    fwd = [p for p in inputs if (first(p, "name") or "").lower() == "forward"]
    check(any(first(p, "unix_path") == "/var/run/fluent.sock" for p in fwd),
          f"{CONF}: forward input on /var/run/fluent.sock", f"{CONF}: no forward input with unix_path /var/run/fluent.sock")
    check(any(first(p, "port") == "24224" for p in fwd),
          f"{CONF}: forward input on TCP 24224", f"{CONF}: no forward input on Port 24224")
    rm = [p for p in filters if (first(p, "name") or "").lower() == "record_modifier"]
    records = [v.split()[0] for p in rm for k, v in p if k.lower() == "record"]
    check(all(k in records for k in ("ecs_cluster", "ecs_task_arn", "ecs_task_definition")),
          f"{CONF}: record_modifier adds the ECS metadata",
          f"{CONF}: a record_modifier filter must add ecs_cluster, ecs_task_arn and ecs_task_definition")
    check(service.get("http_server", "").lower() == "on" and service.get("health_check", "").lower() == "on"
          and service.get("http_port") == "2020",
          f"{CONF}: HTTP server and health check on 2020",
          f"{CONF}: [SERVICE] needs HTTP_Server On, HTTP_Port 2020 and Health_Check On")
    keys = output_keys(outputs[0])
    check(keys.get("workers") == "1", f"{CONF}: Workers 1", f"{CONF}: the {PLUGIN_NAME} output should have Workers 1")
    check(keys.get("endpoint") == "${DD_ENDPOINT}", f"{CONF}: endpoint from ${{DD_ENDPOINT}}",
          f"{CONF}: the {PLUGIN_NAME} output should have `endpoint ${{DD_ENDPOINT}}`")
    check(keys.get("apikey") == "${DD_API_KEY}", f"{CONF}: apikey from ${{DD_API_KEY}}",
          f"{CONF}: the {PLUGIN_NAME} output should have `apikey ${{DD_API_KEY}}`")
    return {"keys": keys, "inputs": inputs, "filters": filters, "service": service}


def check_yaml_conf(classic):
    try:
        # BaseLoader keeps every scalar a string, as Fluent Bit reads them.
        doc = yaml.load(read(YAML_CONF), Loader=yaml.BaseLoader)
    except (OSError, yaml.YAMLError) as e:
        fail(f"{YAML_CONF}: {e}")
        return None
    if not isinstance(doc, dict):
        fail(f"{YAML_CONF}: not a mapping")
        return None
    check(doc.get("plugins") == [PLUGIN_PATH], f"{YAML_CONF}: plugins loads {PLUGIN_PATH}",
          f"{YAML_CONF}: top-level `plugins` should be [{PLUGIN_PATH}]")
    pipeline = doc.get("pipeline") or {}
    outputs = [o for o in pipeline.get("outputs") or [] if str(o.get("name", "")).lower() == PLUGIN_NAME]
    if not check(len(outputs) == 1, f"{YAML_CONF}: one {PLUGIN_NAME} output",
                 f"{YAML_CONF}: expected one pipeline.outputs entry with name {PLUGIN_NAME}, found {len(outputs)}"):
        return None
    keys = output_keys(outputs[0].items())
    if classic:
        check(keys == classic["keys"],
              f"{YAML_CONF}: same {PLUGIN_NAME} output keys as {CONF}",
              f"{YAML_CONF}: the {PLUGIN_NAME} output differs from {CONF}: {keys} vs {classic['keys']}")
        names = [str(i.get("name", "")).lower() for i in pipeline.get("inputs") or []]
        cnames = [(first(p, "name") or "").lower() for p in classic["inputs"]]
        check(names == cnames, f"{YAML_CONF}: same inputs as {CONF}",
              f"{YAML_CONF}: inputs {names} differ from {CONF}'s {cnames}")
        fnames = [str(i.get("name", "")).lower() for i in pipeline.get("filters") or []]
        cfnames = [(first(p, "name") or "").lower() for p in classic["filters"]]
        check(fnames == cfnames, f"{YAML_CONF}: same filters as {CONF}",
              f"{YAML_CONF}: filters {fnames} differ from {CONF}'s {cfnames}")
        service = {k.lower(): v for k, v in (doc.get("service") or {}).items()}
        for key in ("http_server", "http_port", "health_check", "grace", "flush"):
            check(str(service.get(key, "")).lower() == str(classic["service"].get(key, "")).lower(),
                  f"{YAML_CONF}: service.{key} as in {CONF}",
                  f"{YAML_CONF}: service.{key} differs from {CONF}")
    return keys


def check_image_confs():
    try:
        plugins = parse_classic(read(PLUGINS_CONF), PLUGINS_CONF)
        image_conf = parse_classic(read(IMAGE_CONF), IMAGE_CONF)
    except (OSError, ValueError) as e:
        fail(str(e))
        return
    paths = [v for s, p in plugins if s == "PLUGINS" for k, v in p if k.lower() == "path"]
    check(paths == [PLUGIN_PATH], f"{PLUGINS_CONF}: Path {PLUGIN_PATH}",
          f"{PLUGINS_CONF}: [PLUGINS] should have `Path {PLUGIN_PATH}` (found {paths})")
    service = {k.lower(): v for s, p in image_conf if s == "SERVICE" for k, v in p}
    check(service.get("plugins_file") == PLUGINS_FILE_PATH, f"{IMAGE_CONF}: Plugins_File {PLUGINS_FILE_PATH}",
          f"{IMAGE_CONF}: [SERVICE] needs `Plugins_File {PLUGINS_FILE_PATH}`")
    check(service.get("http_server", "").lower() == "on" and service.get("http_port") == "2020"
          and service.get("health_check", "").lower() == "on" and service.get("grace") == "30"
          and service.get("flush") == "1",
          f"{IMAGE_CONF}: HTTP server on 2020, health check, Grace 30, Flush 1",
          f"{IMAGE_CONF}: [SERVICE] needs HTTP_Server On, HTTP_Port 2020, Health_Check On, Grace 30 and Flush 1")
    check(not [s for s, _ in image_conf if s in ("INPUT", "OUTPUT")], f"{IMAGE_CONF}: no inputs or outputs",
          f"{IMAGE_CONF}: must not define inputs or outputs (FireLens generates them)")


# ---------------------------------------------------------------------------------- compose

def check_compose(df, classic):
    try:
        doc = yaml.safe_load(read(COMPOSE))
    except (OSError, yaml.YAMLError) as e:
        fail(f"{COMPOSE}: {e}")
        return None
    services = (doc or {}).get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    stages = df.stage_names() if df else []
    for name, svc in services.items():
        build = svc.get("build")
        if build is not None:
            if isinstance(build, str):
                build = {"context": build}
            ctx = compose_default(build.get("context", "."))
            check(os.path.isdir(path(ctx)), f"{COMPOSE}: {name}: build context {ctx} exists",
                  f"{COMPOSE}: {name}: build context {ctx} does not exist")
            dockerfile = os.path.join(ctx, compose_default(build.get("dockerfile", "Dockerfile")))
            check(os.path.isfile(path(dockerfile)), f"{COMPOSE}: {name}: {dockerfile} exists",
                  f"{COMPOSE}: {name}: {dockerfile} does not exist")
            target = build.get("target")
            if target is not None and os.path.normpath(dockerfile) == DOCKERFILE:
                check(target in stages, f"{COMPOSE}: {name}: target {target} is a Dockerfile stage",
                      f"{COMPOSE}: {name}: build target `{target}` is not an `AS {target}` stage of {DOCKERFILE}")
            for k, v in (build.get("args") or {}).items():
                val = compose_default(v)
                if k == "AWS_FOR_FLUENT_BIT_TAG":
                    check(val not in ("latest", "stable", ""), f"{COMPOSE}: {name}: base tag pinned ({val})",
                          f"{COMPOSE}: {name}: AWS_FOR_FLUENT_BIT_TAG must be a pinned tag, not `{val}`")
        for vol in svc.get("volumes") or []:
            if isinstance(vol, str):
                src = vol.split(":")[0]
                kind = "bind" if src.startswith((".", "/", "~")) else "volume"
            else:
                src, kind = vol.get("source", ""), vol.get("type", "volume")
            src = compose_default(src)
            if kind == "bind":
                check(os.path.exists(path(src)), f"{COMPOSE}: {name}: bind source {src} exists",
                      f"{COMPOSE}: {name}: bind-mount source {src} does not exist")
            elif src:
                check(src in declared_volumes, f"{COMPOSE}: {name}: volume {src} declared",
                      f"{COMPOSE}: {name}: named volume {src} is not declared under top-level volumes")

    for required in ("intake", "log-router", "app"):
        check(required in services, f"{COMPOSE}: service {required}", f"{COMPOSE}: no service `{required}`")
    if not all(s in services for s in ("intake", "log-router", "app")):
        return None
    intake, router, app = services["intake"], services["log-router"], services["app"]
    check((intake.get("build") or {}).get("target") == "mock-intake", f"{COMPOSE}: intake built from mock-intake",
          f"{COMPOSE}: intake should build the Dockerfile's mock-intake target")
    check("--print" in " ".join(map(str, intake.get("command") or [])) or "MOCK_INTAKE_PRINT" in env_dict(intake.get("environment")),
          f"{COMPOSE}: intake prints what it receives", f"{COMPOSE}: intake should run with --print")
    mounts = [v for v in router.get("volumes") or [] if isinstance(v, str)]
    check(any(v.split(":")[0] in ("./" + CONF, CONF) and v.split(":")[1] == FIRELENS_CONF_PATH for v in mounts),
          f"{COMPOSE}: log-router mounts {CONF} at {FIRELENS_CONF_PATH}",
          f"{COMPOSE}: log-router must mount ./{CONF} at {FIRELENS_CONF_PATH}")
    check(any(v.split(":")[1] == "/var/run" and not v.startswith((".", "/")) for v in mounts),
          f"{COMPOSE}: log-router has the socket directory /var/run in a named volume",
          f"{COMPOSE}: log-router should mount a named volume at /var/run (the forward socket)")
    ports = [str(p) for p in router.get("ports") or []]
    check(any(p.endswith(":24224") or p == "24224" for p in ports), f"{COMPOSE}: log-router publishes 24224",
          f"{COMPOSE}: log-router must publish the forward port 24224")
    hc = " ".join(map(str, (router.get("healthcheck") or {}).get("test") or []))
    check("curl" in hc and ":2020/api/v1/health" in hc, f"{COMPOSE}: log-router health check on /api/v1/health",
          f"{COMPOSE}: log-router needs a curl health check on :2020/api/v1/health")
    env = env_dict(router.get("environment"))
    check(compose_default(env.get("DD_ENDPOINT", "")) == "http://intake:8080" and "${DD_ENDPOINT-" in env.get("DD_ENDPOINT", ""),
          f"{COMPOSE}: DD_ENDPOINT defaults to http://intake:8080 and can be set empty",
          f"{COMPOSE}: log-router needs DD_ENDPOINT: ${{DD_ENDPOINT-http://intake:8080}}")
    check(bool(compose_default(env.get("DD_API_KEY", ""))), f"{COMPOSE}: DD_API_KEY has a dummy default",
          f"{COMPOSE}: log-router needs DD_API_KEY with a dummy default (${{DD_API_KEY:-...}})")
    if classic:
        used = set()
        for v in classic["keys"].values():
            used.update(m.group(1) or m.group(4) for m in VAR_RE.finditer(v))
        missing = sorted(u for u in used if u not in env)
        check(not missing, f"{COMPOSE}: log-router sets every variable {CONF} uses",
              f"{COMPOSE}: log-router's environment does not set {', '.join(missing)} used in {CONF}")
    logging_ = app.get("logging") or {}
    opts = {k: str(v) for k, v in (logging_.get("options") or {}).items()}
    check(logging_.get("driver") == "fluentd", f"{COMPOSE}: app logs with the fluentd driver",
          f"{COMPOSE}: app must use logging.driver fluentd")
    check(opts.get("fluentd-address", "").endswith(":24224"), f"{COMPOSE}: app sends to port 24224",
          f"{COMPOSE}: app's fluentd-address must point at the published port 24224")
    check(opts.get("fluentd-async") == "true", f"{COMPOSE}: app uses fluentd-async",
          f"{COMPOSE}: app should set fluentd-async: \"true\"")
    tag = opts.get("tag", "")
    check(re.fullmatch(r"[a-z0-9_-]+-firelens-[0-9a-f]{32}", tag) is not None, f"{COMPOSE}: FireLens-shaped tag {tag}",
          f"{COMPOSE}: app's tag should look like <container>-firelens-<task id>, not `{tag}`")
    if classic:
        match = classic["keys"].get("match", "")
        check(fnmatch.fnmatchcase(tag, match), f"{COMPOSE}: tag {tag} matches the output's Match {match}",
              f"{COMPOSE}: app's tag `{tag}` is not matched by the {PLUGIN_NAME} output's Match `{match}`")
    return env


# --------------------------------------------------------------------- the base image tag

def check_base_tag(df):
    """The Dockerfile's default aws-for-fluent-bit tag is the one docker-compose.yml, the README
    and the task definition's image name; every `AWS_FOR_FLUENT_BIT_TAG=` they show is that 3.x
    tag or the one documented 2.x tag."""
    default = df.global_args.get("AWS_FOR_FLUENT_BIT_TAG", "") if df else ""
    if not check(AFB_3X_TAG.fullmatch(default) is not None, f"base tag: default {default} is 3.x",
                 f"base tag: no pinned 3.x default in {DOCKERFILE} (found `{default}`); the other files cannot be checked"):
        return
    texts = {}
    for rel in (DOCKERFILE, COMPOSE, README):
        try:
            texts[rel] = read(rel)
        except OSError as e:
            fail(f"base tag: {rel}: {e}")
    # docker-compose.yml builds the log router with the same default.
    try:
        doc = yaml.safe_load(texts.get(COMPOSE, "")) or {}
        arg = (((doc.get("services") or {}).get("log-router") or {}).get("build") or {}).get("args", {}).get("AWS_FOR_FLUENT_BIT_TAG")
    except (yaml.YAMLError, AttributeError) as e:
        arg = None
        fail(f"base tag: {COMPOSE}: {e}")
    check(arg == "${AWS_FOR_FLUENT_BIT_TAG:-" + default + "}",
          f"base tag: {COMPOSE} log-router defaults to {default}",
          f"base tag: {COMPOSE} log-router must have build arg AWS_FOR_FLUENT_BIT_TAG: ${{AWS_FOR_FLUENT_BIT_TAG:-{default}}} (found `{arg}`)")
    # The documented build args: the 3.x default, or one 2.x tag everywhere.
    shown = [(rel, t) for rel, text in texts.items() for t in BUILD_ARG_RE.findall(text)]
    two = sorted({t for _, t in shown if AFB_2X_TAG.fullmatch(t)})
    check(len(two) == 1, f"base tag: one documented 2.x tag ({', '.join(two)})",
          f"base tag: {DOCKERFILE}, {COMPOSE} and {README} must document exactly one 2.x build arg (found {two or 'none'})")
    for rel in (DOCKERFILE, README):
        check(any(r == rel and t in two for r, t in shown), f"base tag: {rel} documents the 2.x build arg",
              f"base tag: {rel} must show the 2.x build arg AWS_FOR_FLUENT_BIT_TAG=<2.x tag>")
    for rel, t in shown:
        check(t == default or t in two, f"base tag: {rel} shows AWS_FOR_FLUENT_BIT_TAG={t}",
              f"base tag: {rel} shows AWS_FOR_FLUENT_BIT_TAG={t}, neither the default {default} nor the documented 2.x tag")
    readme = texts.get(README, "")
    check(f"`{default}`" in readme and f"-afb{default}" in readme, f"base tag: {README} names {default}",
          f"base tag: {README} must name the default `{default}` and the image tag suffix -afb{default}")
    # No stale pins: any other 3.x tag in backticks in the README is a leftover default.
    stale = sorted({t for t in re.findall(r"`(3\.\d+\.\d+)`", readme) if t != default})
    check(not stale, f"base tag: {README} names no other 3.x tag",
          f"base tag: {README} names 3.x tag(s) {stale} other than the default {default}")
    # The task definition runs the image built on that tag.
    try:
        td = json.loads(read(TASK_DEF))
        images = [c.get("image", "") for c in td.get("containerDefinitions") or [] if "firelensConfiguration" in c]
    except (OSError, ValueError, AttributeError) as e:
        images = []
        fail(f"base tag: {TASK_DEF}: {e}")
    check(len(images) == 1 and images[0].endswith(f"-afb{default}"),
          f"base tag: {TASK_DEF} log router image is built on {default}",
          f"base tag: {TASK_DEF}: the log router image tag must end in -afb{default} (found {images})")


# ------------------------------------------------------------------------- task definition

def check_task_definition():
    try:
        td = json.loads(read(TASK_DEF))
    except (OSError, ValueError) as e:
        fail(f"{TASK_DEF}: not valid JSON: {e}")
        return
    PASSED.append(f"{TASK_DEF}: valid JSON")
    check("FARGATE" in (td.get("requiresCompatibilities") or []), f"{TASK_DEF}: FARGATE",
          f"{TASK_DEF}: requiresCompatibilities must include FARGATE")
    check(td.get("networkMode") == "awsvpc", f"{TASK_DEF}: awsvpc", f"{TASK_DEF}: networkMode must be awsvpc")
    for k in ("cpu", "memory"):
        check(isinstance(td.get(k), str) and td[k].isdigit(), f"{TASK_DEF}: {k} {td.get(k)}",
              f"{TASK_DEF}: task-level {k} must be a string of digits")
    check(str(td.get("executionRoleArn", "")).startswith("arn:aws:iam::"), f"{TASK_DEF}: executionRoleArn",
          f"{TASK_DEF}: executionRoleArn is needed to read the secret")
    containers = td.get("containerDefinitions") or []
    routers = [c for c in containers if "firelensConfiguration" in c]
    apps = [c for c in containers if (c.get("logConfiguration") or {}).get("logDriver") == "awsfirelens"]
    if not check(len(routers) == 1 and apps, f"{TASK_DEF}: a log router and awsfirelens containers",
                 f"{TASK_DEF}: needs one container with firelensConfiguration and at least one with logDriver awsfirelens"):
        return
    r = routers[0]
    fc = r["firelensConfiguration"]
    fo = fc.get("options") or {}
    check(fc.get("type") == "fluentbit", f"{TASK_DEF}: firelens type fluentbit",
          f"{TASK_DEF}: firelensConfiguration.type must be fluentbit")
    check(fo.get("enable-ecs-log-metadata") == "true", f"{TASK_DEF}: enable-ecs-log-metadata \"true\"",
          f"{TASK_DEF}: firelensConfiguration.options.enable-ecs-log-metadata must be the string \"true\"")
    check(fo.get("config-file-type") == "file" and fo.get("config-file-value") == IMAGE_CONF_PATH,
          f"{TASK_DEF}: config-file-value {IMAGE_CONF_PATH} (file)",
          f"{TASK_DEF}: firelens options need config-file-type file and config-file-value {IMAGE_CONF_PATH}")
    check(isinstance(r.get("memoryReservation"), int) and r["memoryReservation"] > 0, f"{TASK_DEF}: router memoryReservation",
          f"{TASK_DEF}: the log router needs memoryReservation")
    hc = " ".join((r.get("healthCheck") or {}).get("command") or [])
    check("curl" in hc and "2020/api/v1/health" in hc, f"{TASK_DEF}: router health check on 2020",
          f"{TASK_DEF}: the log router needs a curl health check on 127.0.0.1:2020/api/v1/health")
    rl = r.get("logConfiguration") or {}
    check(rl.get("logDriver") == "awslogs" and {"awslogs-group", "awslogs-region"} <= set(rl.get("options") or {}),
          f"{TASK_DEF}: router logs to CloudWatch (awslogs)",
          f"{TASK_DEF}: the log router should log with awslogs (awslogs-group, awslogs-region)")
    for c in apps:
        lc = c["logConfiguration"]
        opts = lc.get("options") or {}
        src = f"{TASK_DEF}#{c.get('name')}"
        check(opts.get("Name") == PLUGIN_NAME, f"{src}: Name {PLUGIN_NAME}", f"{src}: options.Name must be {PLUGIN_NAME}")
        nonstr = [k for k, v in opts.items() if not isinstance(v, str)]
        check(not nonstr, f"{src}: option values are strings", f"{src}: option values must be strings: {nonstr}")
        for k in ("site", "dd_service", "dd_source", "dd_tags", "provider", "Workers", "Retry_Limit"):
            check(k in opts, f"{src}: option {k}", f"{src}: options.{k} missing")
        secrets = lc.get("secretOptions") or []
        api = [s for s in secrets if s.get("name") == "apikey"]
        check(len(api) == 1 and re.fullmatch(r"arn:aws:ssm:[a-z0-9-]+:\d{12}:parameter/\S+", api[0].get("valueFrom", "")),
              f"{src}: apikey from SSM Parameter Store", f"{src}: secretOptions needs apikey from an arn:aws:ssm:...:parameter/... ARN")
        overlap = [s.get("name") for s in secrets if s.get("name") in opts]
        check(not overlap, f"{src}: no option both plain and secret", f"{src}: {overlap} both in options and secretOptions")


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()

    df = check_dockerfile()
    classic = check_classic_conf()
    check_yaml_conf(classic)
    check_image_confs()
    check_compose(df, classic)
    check_task_definition()
    check_base_tag(df)

    if FAILURES:
        for f in FAILURES:
            sys.stderr.write(f"check-compose: FAIL: {f}\n")
        sys.stderr.write(f"check-compose: {len(FAILURES)} failed, {len(PASSED)} passed\n")
        return 1
    if not PASSED:
        sys.stderr.write("check-compose: FAIL: no check ran\n")
        return 1
    sys.stderr.write(f"check-compose: all {len(PASSED)} checks passed\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
