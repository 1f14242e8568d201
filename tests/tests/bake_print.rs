//! `brix bake --print` and `--list` side by side with real buildx 0.29 (issue 15): the same
//! bake files, environment and flags give the same JSON (byte for byte), the same lists, and
//! for a bad file the same exit status and last line. Nothing is built, so no builder is
//! needed; both tools run in a folder of the case's files with a store of their own.

use std::path::Path;
use std::process::Command;

use brix_e2e::{E2eEnv, Run, require_buildx, run};

/// One case: files written into a fresh folder, the arguments after `bake`, extra
/// environment.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const APP_HCL: &str = r#"
variable "TAG" {
  default = "latest"
}
variable "REPO" {
  default = "localhost:5000/app"
}
variable "PLATFORMS" {
  type    = list(string)
  default = ["linux/amd64", "linux/arm64"]
}
variable "DEBUG" {
  type    = bool
  default = false
}
variable "JOBS" {
  type    = number
  default = 4
}
function "tag" {
  params = [name, tag]
  result = "${REPO}/${name}:${tag}"
}
group "default" {
  targets = ["app", "db"]
}
target "_common" {
  args = {
    GO_VERSION = "1.22"
    EMPTY      = null
    JOBS       = JOBS
  }
  labels = {
    "org.opencontainers.image.source" = "https://example.com"
  }
}
target "app" {
  inherits   = ["_common"]
  dockerfile = "app.Dockerfile"
  tags       = [tag("app", TAG), tag("app", "v${1 + 1}")]
  platforms  = PLATFORMS
  args = {
    MODE  = TAG == "latest" ? "dev" : "release"
    DEBUG = DEBUG
  }
  cache-from = ["type=registry,ref=localhost:5000/app:cache"]
  cache-to   = ["type=inline"]
  output     = ["type=registry"]
}
target "db" {
  name = "db-${item}"
  matrix = {
    item = ["pg", "my"]
  }
  context = "db"
  tags    = ["db:${item}", upper(item)]
  attest  = ["type=provenance,mode=max", "type=sbom"]
}
"#;

const FUNCTIONS_HCL: &str = r#"
variable "LIST" {
  default = ["b", "a", "c", "a"]
}
function "repeat" {
  params         = [sep]
  variadic_params = items
  result         = join(sep, items)
}
target "default" {
  args = {
    coalesce    = coalesce("", "x")
    coalesce2   = coalesce(null, "y")
    join        = join(",", sort(distinct(LIST)))
    split       = length(split(",", "a,,b"))
    format      = format("%s-%03d-%.2f-%q", "a", 7, 3.14159, "q")
    upper       = upper(trimspace("  hi "))
    replace     = replace("a.b.c", ".", "/")
    regex       = regex_replace("v1.2.3", "^v", "")
    substr      = substr("abcdef", 1, 3)
    for         = join(" ", [for s in LIST : upper(s) if s != "c"])
    objfor      = jsonencode({ for s in distinct(LIST) : s => strlen(s) })
    cond        = length(LIST) > 3 ? "many" : "few"
    variadic    = repeat("+", "x", "y", "z")
    jsonencode  = jsonencode({ b = [1, 2], a = "s", c = true })
    min         = min(3, 1, 2)
    number      = 10 / 4
    modulo      = 7 % 3
    try         = try(LIST[10], "fallback")
    can         = can(LIST[10])
    merge       = jsonencode(merge({ a = 1 }, { b = 2 }, { a = 3 }))
    keys        = join(",", keys({ z = 1, y = 2 }))
    element     = element(LIST, 5)
    flatten     = jsonencode(flatten([["a"], ["b", ["c"]]]))
    heredoc     = <<-EOT
      line one
      line two
    EOT
    template    = "%{for x in ["p", "q"]}${x};%{endfor}"
    sanitize    = sanitize("a/b:c")
    base64      = base64encode("brix")
    sha         = sha256("brix")
    md5         = md5("brix")
    lookup      = lookup({ a = "1" }, "b", "dflt")
    concat      = jsonencode(concat(["a"], ["b"]))
    indexof     = indexof(["a", "b"], "b")
    range       = jsonencode(range(1, 7, 2))
    zipmap      = jsonencode(zipmap(["k1", "k2"], ["v1", "v2"]))
    setunion    = jsonencode(setunion(["b"], ["a", "b"]))
    title       = title("hello world")
    trim        = trim("--x--", "-")
    timeadd     = timeadd("2024-01-01T00:00:00Z", "1h30m")
    formatdate  = formatdate("YYYY-MM-DD hh:mm", "2024-03-05T07:08:09Z")
  }
}
"#;

const INHERITS_HCL: &str = r#"
target "base" {
  dockerfile = "base.Dockerfile"
  args = {
    A = "base"
    B = "base"
  }
  tags      = ["base"]
  platforms = ["linux/amd64"]
  no-cache  = true
}
target "mid" {
  inherits = ["base"]
  args = {
    B = "mid"
    C = "mid"
  }
  tags = ["mid"]
}
target "other" {
  args = {
    C = "other"
    D = "other"
  }
  pull = true
}
target "leaf" {
  inherits = ["mid", "other"]
  args = {
    D = "leaf"
  }
  contexts = {
    base = "target:base"
    alpine = "docker-image://alpine:3.20"
  }
  dockerfile-inline = "FROM base\nRUN echo leaf\n"
  network  = "host"
  shm-size = "128m"
  ulimits  = ["nofile=1024:2048"]
  no-cache-filter = ["build"]
  annotations = ["index:org.opencontainers.image.title=leaf"]
  entitlements = ["network.host"]
  description = "the leaf"
}
group "all" {
  targets = ["leaf", "nested"]
}
group "nested" {
  targets = ["mid"]
}
"#;

const BAKE_JSON: &str = r#"{
  "variable": {
    "TAG": { "default": "1.0" },
    "NAME": { "default": "json-${TAG}" }
  },
  "group": {
    "default": { "targets": ["web"] }
  },
  "target": {
    "web": {
      "context": "web",
      "tags": ["localhost:5000/web:${TAG}", "${NAME}"],
      "args": { "V": "${TAG}" },
      "platforms": ["linux/arm64"]
    }
  }
}"#;

const COMPOSE_YAML: &str = r#"
services:
  api:
    build:
      context: ./api
      dockerfile: api.Dockerfile
      args:
        MODE: ${MODE:-prod}
        PLAIN: plain
      target: runtime
      tags:
        - localhost:5000/api:extra
      x-bake:
        platforms:
          - linux/amd64
          - linux/arm64
        cache-to: type=inline
    image: localhost:5000/api:${TAG:-latest}
  worker:
    build: ./worker
  redis:
    image: redis
"#;

const OVERRIDE_HCL: &str = r#"
target "app" {
  tags = ["from-override"]
  args = {
    OVERRIDDEN = "yes"
  }
}
"#;

const VALIDATION_HCL: &str = r#"
variable "PORT" {
  type    = number
  default = 80
  validation {
    condition     = PORT > 1024
    error_message = "PORT must be above 1024."
  }
}
target "default" {
  args = {
    PORT = PORT
  }
}
"#;

const MATRIX_DOCKER_BAKE_HCL: &str = r#"target "build" {
  name = "build-${os}-${replace(ver, ".", "-")}"
  matrix = {
    os  = ["alpine", "debian"]
    ver = ["1.0", "2.1"]
  }
  args = { OS = os, VERSION = ver }
  tags = ["app:${os}-${ver}"]
}
group "default" { targets = ["build"] }
"#;
const MATRIXOBJ_DOCKER_BAKE_HCL: &str = r#"target "app" {
  name = "app-${item.name}"
  matrix = {
    item = [
      { name = "small", size = 1 },
      { name = "large", size = 8 },
    ]
  }
  args = { SIZE = item.size }
}
"#;
const MATRIXDUP_DOCKER_BAKE_HCL: &str = r#"target "app" {
  name = "app"
  matrix = { v = ["a", "b"] }
}
"#;
const INHCYCLE_DOCKER_BAKE_HCL: &str = r#"target "a" { inherits = ["b"] }
target "b" { inherits = ["a"] }
"#;
const SYNTAX_DOCKER_BAKE_HCL: &str = r#"target "app" {
  tags = ["a",
}
"#;
const UNKNOWNATTR_DOCKER_BAKE_HCL: &str = r#"target "app" {
  dockerfiles = "x"
}
"#;
const UNKNOWNFN_DOCKER_BAKE_HCL: &str = r#"target "app" {
  tags = [nosuchfn("x")]
}
"#;
const TYPEERR_DOCKER_BAKE_HCL: &str = r#"target "app" {
  platforms = "linux/amd64"
}
"#;
const CTXCYCLE_DOCKER_BAKE_HCL: &str = r#"target "a" { contexts = { x = "target:b" } }
target "b" { contexts = { y = "target:a" } }
"#;
const VARREF_DOCKER_BAKE_HCL: &str = r#"variable "BASE" { default = "alpine" }
variable "IMAGE" { default = "${BASE}:3.20" }
variable "EXTRA" {
  type = map(string)
  default = { a = "1" }
}
target "default" {
  args = merge(EXTRA, { IMAGE = IMAGE })
  tags = [for k, v in EXTRA : "${k}-${v}"]
}
"#;
const TARGETREF_DOCKER_BAKE_HCL: &str = r#"target "base" {
  tags = ["base:1"]
  args = { V = "1" }
}
target "default" {
  tags = [for t in target.base.tags : "${t}-derived"]
  args = { FROM_BASE = target.base.args.V }
}
"#;
const COMPOSE2_COMPOSE_OVERRIDE_YAML: &str = r#"services:
  web:
    build:
      args:
        C: "3"
"#;
const COMPOSE2_COMPOSE_YAML: &str = r#"services:
  web:
    build:
      context: web
      args:
        - A=1
        - B
      labels:
        com.example.x: "y"
      cache_from:
        - type=registry,ref=localhost:5000/web:cache
      platforms:
        - linux/arm64
      secrets:
        - token
    image: localhost:5000/web:1
secrets:
  token:
    environment: TOKEN_ENV
"#;
const JSONMATRIX_DOCKER_BAKE_JSON: &str = r#"{
  "target": {
    "app": {
      "name": "app-${v}",
      "matrix": { "v": ["x", "y"] },
      "tags": ["app:${v}"]
    }
  }
}
"#;
const MIXED_COMPOSE_YAML: &str = r#"services:
  api:
    build: ./api
"#;
const MIXED_DOCKER_BAKE_HCL: &str = r#"target "api" {
  args = { FROM_HCL = "1" }
}
"#;
const HEREDOC_DOCKER_BAKE_HCL: &str = r#"target "default" {
  dockerfile-inline = <<EOT
FROM alpine
RUN echo "$${HOME}" > /h
EOT
  args = { ESC = "$${NOT}", PCT = "%%{x}" }
}
"#;
const VALIDATION2_DOCKER_BAKE_HCL: &str = r#"variable "ENV" {
  default = "dev"
  validation {
    condition = contains(["dev", "prod"], ENV)
    error_message = "ENV must be dev or prod, not ${ENV}."
  }
}
target "default" { args = { ENV = ENV } }
"#;
const SETGLOB_DOCKER_BAKE_HCL: &str = r#"target "foo-a" { tags = ["a"] }
target "foo-b" { tags = ["b"] }
target "bar" { tags = ["c"] }
group "default" { targets = ["foo-a", "foo-b", "bar"] }
"#;

const CASES: &[Case] = &[
    Case {
        name: "a matrix with a name template",
        files: &[("docker-bake.hcl", MATRIX_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "a matrix of objects",
        files: &[("docker-bake.hcl", MATRIXOBJ_DOCKER_BAKE_HCL)],
        args: &["--print", "app"],
        env: &[],
    },
    Case {
        name: "a matrix name collision",
        files: &[("docker-bake.hcl", MATRIXDUP_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "a cycle in inherits",
        files: &[("docker-bake.hcl", INHCYCLE_DOCKER_BAKE_HCL)],
        args: &["--print", "a"],
        env: &[],
    },
    Case {
        name: "a syntax error",
        files: &[("docker-bake.hcl", SYNTAX_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "an unknown attribute",
        files: &[("docker-bake.hcl", UNKNOWNATTR_DOCKER_BAKE_HCL)],
        args: &["--print", "app"],
        env: &[],
    },
    Case {
        name: "an unknown function",
        files: &[("docker-bake.hcl", UNKNOWNFN_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "a type error",
        files: &[("docker-bake.hcl", TYPEERR_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "a cycle of target: contexts",
        files: &[("docker-bake.hcl", CTXCYCLE_DOCKER_BAKE_HCL)],
        args: &["--print", "a"],
        env: &[],
    },
    Case {
        name: "variables from variables and a typed map from the environment",
        files: &[("docker-bake.hcl", VARREF_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[("EXTRA", r#"{"b":"2"}"#)],
    },
    Case {
        name: "references to another target's attributes",
        files: &[("docker-bake.hcl", TARGETREF_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "compose with an override file, list args, secrets",
        files: &[
            ("compose.override.yaml", COMPOSE2_COMPOSE_OVERRIDE_YAML),
            ("compose.yaml", COMPOSE2_COMPOSE_YAML),
        ],
        args: &["--print"],
        env: &[("TOKEN_ENV", r#"x"#)],
    },
    Case {
        name: "json with a matrix",
        files: &[("docker-bake.json", JSONMATRIX_DOCKER_BAKE_JSON)],
        args: &["--print", "app"],
        env: &[],
    },
    Case {
        name: "compose and HCL merged",
        files: &[
            ("compose.yaml", MIXED_COMPOSE_YAML),
            ("docker-bake.hcl", MIXED_DOCKER_BAKE_HCL),
        ],
        args: &["--print", "api"],
        env: &[],
    },
    Case {
        name: "heredoc and escapes",
        files: &[("docker-bake.hcl", HEREDOC_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "a validation with an interpolated message",
        files: &[("docker-bake.hcl", VALIDATION2_DOCKER_BAKE_HCL)],
        args: &["--print"],
        env: &[("ENV", r#"stage"#)],
    },
    Case {
        name: "--set with globs, labels and +=",
        files: &[("docker-bake.hcl", SETGLOB_DOCKER_BAKE_HCL)],
        args: &[
            "--print",
            "--set",
            "foo*.args.X=1",
            "--set",
            "*.labels.l=v",
            "--set",
            "bar.tags+=d",
        ],
        env: &[],
    },
    Case {
        name: "hcl: variables, functions, inherits, matrix, groups",
        files: &[("docker-bake.hcl", APP_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "hcl: typed variables from the environment",
        files: &[("docker-bake.hcl", APP_HCL)],
        args: &["--print", "app"],
        env: &[
            ("TAG", "2.0"),
            ("PLATFORMS", "linux/riscv64,linux/s390x"),
            ("DEBUG", "true"),
            ("JOBS", "16"),
        ],
    },
    Case {
        name: "hcl: --set overrides with globs and +=",
        files: &[("docker-bake.hcl", APP_HCL)],
        args: &[
            "--print",
            "--set",
            "*.platform=linux/arm64",
            "--set",
            "app.args.EXTRA=1",
            "--set",
            "app.tags+=localhost:5000/app:extra",
            "--set",
            "db-*.no-cache=true",
            "--set",
            "app.output=type=local,dest=out",
        ],
        env: &[],
    },
    Case {
        name: "hcl: the functions buildx provides",
        files: &[("docker-bake.hcl", FUNCTIONS_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "hcl: several inherits, nested groups, every target attribute",
        files: &[("docker-bake.hcl", INHERITS_HCL)],
        args: &["--print", "all"],
        env: &[],
    },
    Case {
        name: "json: variables and interpolation",
        files: &[("docker-bake.json", BAKE_JSON)],
        args: &["--print"],
        env: &[("TAG", "3.1")],
    },
    Case {
        name: "compose: build sections, x-bake, interpolation",
        files: &[("compose.yaml", COMPOSE_YAML)],
        args: &["--print"],
        env: &[("MODE", "dev")],
    },
    Case {
        name: "default lookup merges the override file",
        files: &[
            ("docker-bake.hcl", APP_HCL),
            ("docker-bake.override.hcl", OVERRIDE_HCL),
        ],
        args: &["--print", "app"],
        env: &[],
    },
    Case {
        name: "-f repeated merges in order",
        files: &[("one.hcl", APP_HCL), ("two.hcl", OVERRIDE_HCL)],
        args: &["-f", "one.hcl", "-f", "two.hcl", "--print", "app"],
        env: &[],
    },
    Case {
        name: "--list targets",
        files: &[("docker-bake.hcl", INHERITS_HCL)],
        args: &["--list", "targets"],
        env: &[],
    },
    Case {
        name: "--list variables",
        files: &[("docker-bake.hcl", APP_HCL)],
        args: &["--list", "variables"],
        env: &[],
    },
    Case {
        name: "--list type=targets,format=json",
        files: &[("docker-bake.hcl", INHERITS_HCL)],
        args: &["--list", "type=targets,format=json"],
        env: &[],
    },
    Case {
        name: "a failed validation",
        files: &[("docker-bake.hcl", VALIDATION_HCL)],
        args: &["--print"],
        env: &[],
    },
    Case {
        name: "an unknown target",
        files: &[("docker-bake.hcl", APP_HCL)],
        args: &["--print", "nope"],
        env: &[],
    },
    Case {
        name: "a missing file",
        files: &[],
        args: &["-f", "missing.hcl", "--print"],
        env: &[],
    },
];

/// `tool bake ARGS` in `dir` with the case's environment and a store of its own.
fn bake(tool: &mut Command, dir: &Path, store: &Path, case: &Case) -> Run {
    tool.current_dir(dir)
        .env("BUILDX_CONFIG", store)
        .env("BRIX_CONFIG", store)
        .env_remove("BUILDX_BUILDER")
        .env_remove("BRIX_BUILDER")
        .arg("bake")
        .args(case.args);
    for (k, v) in case.env {
        tool.env(k, v);
    }
    run(tool)
}

/// `--print` JSON with each group's target list sorted: buildx lists a matrix's
/// combinations in Go's random map order, so only the set of them is buildx's behaviour.
fn normalized(text: &str) -> Option<serde_json::Value> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    if let Some(groups) = value.get_mut("group").and_then(|g| g.as_object_mut()) {
        for group in groups.values_mut() {
            if let Some(targets) = group.get_mut("targets").and_then(|t| t.as_array_mut()) {
                targets.sort_by_key(|t| t.to_string());
            }
        }
    }
    Some(value)
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[test]
fn bake_print_and_list_match_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    require_buildx();
    let mut differences = Vec::new();
    for case in CASES {
        let dir = env.scratch_dir("bake-print");
        for (name, text) in case.files {
            std::fs::write(dir.join(name), text).expect("write a bake file");
        }
        let store = env.scratch_dir("bake-print-store");
        let theirs = bake(Command::new("docker").arg("buildx"), &dir, &store, case);
        let ours = bake(&mut Command::new(&env.brix_bin), &dir, &store, case);
        if ours.success != theirs.success {
            differences.push(format!(
                "{}: brix {} where buildx {}\nbrix stderr: {}\nbuildx stderr: {}",
                case.name,
                if ours.success { "succeeded" } else { "failed" },
                if theirs.success {
                    "succeeded"
                } else {
                    "failed"
                },
                ours.stderr,
                theirs.stderr
            ));
        } else if ours.stdout != theirs.stdout
            && normalized(&ours.stdout) != normalized(&theirs.stdout)
        {
            differences.push(format!(
                "{}: stdout differs\n--- brix\n{}\n--- buildx\n{}",
                case.name, ours.stdout, theirs.stdout
            ));
        } else if !theirs.success && last_line(&ours.stderr) != last_line(&theirs.stderr) {
            differences.push(format!(
                "{}: last line differs\nbrix:   {}\nbuildx: {}",
                case.name,
                last_line(&ours.stderr),
                last_line(&theirs.stderr)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} cases differ from buildx:\n\n{}",
        differences.len(),
        CASES.len(),
        differences.join("\n\n")
    );
}
