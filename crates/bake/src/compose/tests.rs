//! buildx's `compose_test.go` cases, and a few of compose-go's rules bake relies on.

use super::*;

fn env_of(vars: &[(&str, &str)]) -> ComposeEnv {
    ComposeEnv {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        working_dir: PathBuf::from("/nonexistent-brix-bake-test-dir"),
    }
}

fn parse_with(yaml: &str, env: &ComposeEnv) -> Result<Config, ComposeError> {
    parse_compose_files(
        &[File {
            name: "compose.yml".into(),
            data: yaml.as_bytes().to_vec(),
        }],
        env,
    )
}

fn parse(yaml: &str) -> Result<Config, ComposeError> {
    parse_with(yaml, &env_of(&[]))
}

fn target<'a>(c: &'a Config, name: &str) -> &'a Target {
    c.target(name).unwrap_or_else(|| panic!("no target {name}"))
}

fn strings<T: ToString>(list: &Option<Vec<T>>) -> Vec<String> {
    let mut v: Vec<String> = list.iter().flatten().map(|e| e.to_string()).collect();
    v.sort();
    v
}

fn arg(t: &Target, key: &str) -> Option<String> {
    t.args.get(key).cloned().flatten()
}

#[test]
fn parse_compose() {
    let c = parse(
        r#"
services:
  db:
    build: ./db
    command: ./entrypoint.sh
    image: docker.io/tonistiigi/db
  webapp:
    build:
      context: ./dir
      additional_contexts:
        foo: ./bar
      dockerfile: Dockerfile-alternate
      network:
        none
      args:
        buildno: 123
      cache_from:
        - type=local,src=path/to/cache
      cache_to:
        - type=local,dest=path/to/cache
      extra_hosts:
        - "somehost:162.242.195.82"
        - "somehost:162.242.195.83"
        - "myhostv6:::1"
      ssh:
        - key=/path/to/key
        - default
      secrets:
        - token
        - aws
  webapp2:
    profiles:
      - test
    build:
      context: ./dir
      dockerfile_inline: |
        FROM alpine
secrets:
  token:
    environment: ENV_TOKEN
  aws:
    file: /root/.aws/credentials
"#,
    )
    .unwrap();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].name, "default");
    assert_eq!(c.groups[0].target_names(), ["db", "webapp", "webapp2"]);
    assert_eq!(c.targets.len(), 3);
    let db = target(&c, "db");
    assert_eq!(db.context.as_deref(), Some("db"));
    assert_eq!(db.tags.as_deref().unwrap(), ["docker.io/tonistiigi/db"]);
    let web = target(&c, "webapp");
    assert_eq!(web.context.as_deref(), Some("dir"));
    assert_eq!(
        web.contexts,
        BTreeMap::from([("foo".to_string(), "bar".to_string())])
    );
    assert_eq!(web.dockerfile.as_deref(), Some("Dockerfile-alternate"));
    assert_eq!(web.args.len(), 1);
    assert_eq!(arg(web, "buildno").as_deref(), Some("123"));
    assert_eq!(strings(&web.cache_from), ["type=local,src=path/to/cache"]);
    assert_eq!(strings(&web.cache_to), ["type=local,dest=path/to/cache"]);
    assert_eq!(web.extra_hosts["myhostv6"].as_deref(), Some("::1"));
    assert_eq!(
        web.extra_hosts["somehost"].as_deref(),
        Some("162.242.195.82,162.242.195.83")
    );
    assert_eq!(web.network.as_deref(), Some("none"));
    assert_eq!(strings(&web.ssh), ["default", "key=/path/to/key"]);
    assert_eq!(
        strings(&web.secrets),
        [
            "id=aws,src=/root/.aws/credentials",
            "id=token,env=ENV_TOKEN"
        ]
    );
    let web2 = target(&c, "webapp2");
    assert_eq!(web2.context.as_deref(), Some("dir"));
    assert_eq!(web2.dockerfile_inline.as_deref(), Some("FROM alpine\n"));
}

#[test]
fn services_without_build_are_no_targets() {
    let c = parse("services:\n    external:\n        image: \"verycooldb:1337\"\n    webapp:\n        build: ./db\n").unwrap();
    assert_eq!((c.groups.len(), c.targets.len()), (1, 1));
}

#[test]
fn targets_and_default_context() {
    let c = parse("services:\n  db:\n    build:\n      target: db\n  webapp:\n    build:\n      context: .\n      target: webapp\n").unwrap();
    assert_eq!(target(&c, "db").target.as_deref(), Some("db"));
    assert_eq!(target(&c, "db").context.as_deref(), Some("."));
    assert_eq!(target(&c, "webapp").target.as_deref(), Some("webapp"));
}

#[test]
fn build_args_from_environment() {
    let env = env_of(&[("FOO", "bar"), ("BAR", "foo"), ("ZZZ_BAR", "zzz_foo")]);
    let c = parse_with(
        r#"
version: "3.8"
services:
  example:
    image: example
    build:
      context: .
      dockerfile: Dockerfile
      args:
        FOO:
        BAR: $ZZZ_BAR
        BRB: FOO
"#,
        &env,
    )
    .unwrap();
    let t = &c.targets[0];
    assert_eq!(arg(t, "FOO").as_deref(), Some("bar"));
    assert_eq!(arg(t, "BAR").as_deref(), Some("zzz_foo"));
    assert_eq!(arg(t, "BRB").as_deref(), Some("FOO"));
}

#[test]
fn inconsistent_file() {
    let err = parse("services:\n  webapp:\n    entrypoint: echo 1\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"service "webapp" has neither an image nor a build context specified: invalid compose project"#
    );
}

#[test]
fn unrelated_sections_are_ignored() {
    parse(
        r#"
services:
  db:
    networks:
      - example.com
    build:
      context: ./db
      target: db
    depends_on:
      other:
        condition: service_healthy
    ports:
      - 3306:3306
    develop:
      watch:
        - path: ./webapp/html
          action: sync
    cgroup: private
    bar: baz
networks:
  example.com:
    name: example.com
foo:
  - bar.baz
"#,
    )
    .unwrap();
}

#[test]
fn tags_and_platforms() {
    let c = parse("services:\n  example:\n    image: example\n    build:\n      context: .\n      tags:\n        - foo\n        - bar\n      platforms:\n        - linux/amd64\n        - linux/arm64\n").unwrap();
    assert_eq!(c.targets[0].tags.as_deref().unwrap(), ["foo", "bar"]);
    assert_eq!(
        c.targets[0].platforms.as_deref().unwrap(),
        ["linux/amd64", "linux/arm64"]
    );
}

#[test]
fn x_bake_extension() {
    let c = parse(
        r#"
services:
  addon:
    image: ct-addon:bar
    build:
      context: .
      dockerfile: ./Dockerfile
      cache_from:
        - user/app:cache
      cache_to:
        - user/app:cache
      tags:
        - ct-addon:baz
      ssh:
        key: /path/to/key
      args:
        CT_ECR: foo
        CT_TAG: bar
      x-bake:
        contexts:
          alpine: docker-image://alpine:3.13
        tags:
          - ct-addon:foo
          - ct-addon:alp
        ssh:
          - default
          - other=path/to/otherkey
        platforms:
          - linux/amd64
          - linux/arm64
        cache-from:
          - type=local,src=path/to/cache
        cache-to:
          - type=local,dest=path/to/cache
        pull: true

  aws:
    image: ct-fake-aws:bar
    build:
      dockerfile: ./aws.Dockerfile
      args:
        CT_ECR: foo
        CT_TAG: bar
      shm_size: 128m
      ulimits:
        nofile:
          soft: 1024
          hard: 1024
      x-bake:
        secret:
          - id=mysecret,src=/local/secret
          - id=mysecret2,src=/local/secret2
        ssh: default
        platforms: linux/arm64
        output: type=docker
        no-cache: true
"#,
    )
    .unwrap();
    let addon = target(&c, "addon");
    assert_eq!(arg(addon, "CT_ECR").as_deref(), Some("foo"));
    assert_eq!(
        addon.tags.as_deref().unwrap(),
        ["ct-addon:baz", "ct-addon:foo", "ct-addon:alp"]
    );
    assert_eq!(
        addon.platforms.as_deref().unwrap(),
        ["linux/amd64", "linux/arm64"]
    );
    assert_eq!(
        strings(&addon.cache_from),
        ["type=local,src=path/to/cache", "user/app:cache"]
    );
    assert_eq!(
        strings(&addon.cache_to),
        ["type=local,dest=path/to/cache", "user/app:cache"]
    );
    assert_eq!(
        strings(&addon.ssh),
        ["default", "key=/path/to/key", "other=path/to/otherkey"]
    );
    assert_eq!(addon.pull, Some(true));
    assert_eq!(
        addon.contexts,
        BTreeMap::from([(
            "alpine".to_string(),
            "docker-image://alpine:3.13".to_string()
        )])
    );
    let aws = target(&c, "aws");
    assert_eq!(aws.tags.as_deref().unwrap(), ["ct-fake-aws:bar"]);
    assert_eq!(
        strings(&aws.secrets),
        [
            "id=mysecret,src=/local/secret",
            "id=mysecret2,src=/local/secret2"
        ]
    );
    assert_eq!(strings(&aws.ssh), ["default"]);
    assert_eq!(aws.platforms.as_deref().unwrap(), ["linux/arm64"]);
    assert_eq!(strings(&aws.outputs), ["type=docker"]);
    assert_eq!(aws.no_cache, Some(true));
    assert_eq!(aws.shm_size.as_deref(), Some("128MiB"));
    assert_eq!(aws.ulimits.as_deref().unwrap(), ["nofile=1024:1024"]);
}

#[test]
fn x_bake_deduplicates() {
    let c = parse(
        r#"
services:
  webapp:
    image: app:bar
    build:
      cache_from:
        - user/app:cache
      cache_to:
        - user/app:cache
      tags:
        - ct-addon:foo
      ssh:
        - default
      x-bake:
        tags:
          - ct-addon:foo
          - ct-addon:baz
        cache-from:
          - user/app:cache
          - type=local,src=path/to/cache
        cache-to:
          - type=local,dest=path/to/cache
        ssh:
          - default
          - key=path/to/key
"#,
    )
    .unwrap();
    let t = &c.targets[0];
    assert_eq!(t.tags.as_deref().unwrap(), ["ct-addon:foo", "ct-addon:baz"]);
    assert_eq!(
        strings(&t.cache_from),
        ["type=local,src=path/to/cache", "user/app:cache"]
    );
    assert_eq!(
        strings(&t.cache_to),
        ["type=local,dest=path/to/cache", "user/app:cache"]
    );
    assert_eq!(strings(&t.ssh), ["default", "key=path/to/key"]);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("brix-bake-compose-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp dir: {e}"));
    dir
}

#[test]
fn env_file_and_environment() {
    let dir = temp_dir("envfile");
    std::fs::write(dir.join("env"), "FOO=bsdf -csdf\n").unwrap_or_else(|e| panic!("{e}"));
    let env = ComposeEnv {
        vars: BTreeMap::new(),
        working_dir: dir.clone(),
    };
    let c = parse_with(
        "services:\n  scratch:\n    build:\n     context: .\n     args:\n        CT_ECR: foo\n        FOO:\n        NODE_ENV:\n    environment:\n      - NODE_ENV=test\n      - AWS_ACCESS_KEY_ID=dummy\n    env_file:\n      - env\n",
        &env,
    )
    .unwrap();
    let t = &c.targets[0];
    assert_eq!(t.args.len(), 3);
    assert_eq!(arg(t, "CT_ECR").as_deref(), Some("foo"));
    assert_eq!(arg(t, "FOO").as_deref(), Some("bsdf -csdf"));
    assert_eq!(arg(t, "NODE_ENV").as_deref(), Some("test"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dot_env_of_the_working_directory() {
    let dir = temp_dir("dotenv");
    std::fs::write(
        dir.join(".env"),
        "FOO=bar\nTEST_VALUE=${SYSTEM_VALUE:?system_value_not_set}\nFOO_VALUE=${TEST_VALUE:?test_value_not_set}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let env = ComposeEnv::with_dot_env(
        BTreeMap::from([("SYSTEM_VALUE".to_string(), "abc".to_string())]),
        dir.clone(),
    )
    .unwrap();
    let c = parse_with(
        "services:\n  test:\n    build:\n      args:\n        FOO:\n        TEST_VALUE:\n        FOO_VALUE:\n",
        &env,
    )
    .unwrap();
    let t = &c.targets[0];
    assert_eq!(arg(t, "FOO").as_deref(), Some("bar"));
    assert_eq!(arg(t, "TEST_VALUE").as_deref(), Some("abc"));
    assert_eq!(arg(t, "FOO_VALUE").as_deref(), Some("abc"));
    // A `.env` folder is ignored.
    let dir2 = temp_dir("dotenvdir");
    std::fs::create_dir_all(dir2.join(".env")).unwrap_or_else(|e| panic!("{e}"));
    assert!(ComposeEnv::with_dot_env(BTreeMap::new(), dir2.clone()).is_ok());
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}

#[test]
fn service_names() {
    for name in ["a", "abc", "a.b", "_a", "a_b", "AbC", "AbC-0123"] {
        let c = parse(&format!(
            "services:\n  {name}:\n    build:\n      context: .\n"
        ))
        .unwrap();
        assert_eq!(c.targets[0].name, sanitize_target_name(name));
    }
}

#[test]
fn secrets_must_be_defined_and_set() {
    assert!(parse("secrets:\n  foo:\n    file: .secret\n").is_ok());
    assert!(parse("secrets:\n  foo:\n    environment: TOKEN\n").is_ok());
    assert!(parse("secrets:\n  foo:\n    external: true\n").is_ok());
    assert_eq!(
        parse("secrets:\n  foo: {}\n").unwrap_err().to_string(),
        "secret \"foo\" must declare either `file` or `environment`: invalid compose project"
    );
    assert_eq!(
        parse("services:\n  foo:\n    build:\n      secrets:\n        - token\n")
            .unwrap_err()
            .to_string(),
        "service \"foo\" refers to undefined build secret token: invalid compose project"
    );
    assert_eq!(
        parse("services:\n  foo:\n    build:\n      secrets: [tok]\nsecrets:\n  tok:\n    external: true\n")
            .unwrap_err()
            .to_string(),
        "unsupported external secret tok"
    );
}

fn file(name: &str, data: &str) -> File {
    File {
        name: name.into(),
        data: data.as_bytes().to_vec(),
    }
}

#[test]
fn detection_like_validate_compose_file() {
    let env = env_of(&[]);
    let cases: &[(&str, &str, bool, bool)] = &[
        ("docker-compose.yml", "services:\n  foo:\n", true, false),
        (
            "docker-compose.yml",
            "services:\n  foo:\n    build: .\n",
            true,
            false,
        ),
        (
            "docker-compose.yml",
            "services:\n  simple:\n    image: nginx\n",
            true,
            false,
        ),
        (
            "docker-compose.foo",
            "services:\n  simple:\n    image: nginx\n",
            true,
            false,
        ),
        (
            "docker-bake.hcl",
            "target \"default\" {\n  dockerfile = \"test\"\n}\n",
            false,
            false,
        ),
        (
            "docker-bake.json",
            "{\"group\": [{\"targets\": [\"my-service\"]}]}",
            false,
            false,
        ),
        (
            "docker-bake.foo",
            "{\"group\": [{\"targets\": [\"my-service\"]}], \"target\": [{\"context\": \".\"}]}",
            false,
            true,
        ),
    ];
    for (name, data, is_compose, has_error) in cases {
        let (got, err) = detect(&file(name, data), &env);
        assert_eq!(
            (got, err.is_some()),
            (*is_compose, *has_error),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn null_args_are_unset() {
    let c = parse("services:\n  scratch:\n    build:\n     context: .\n     args:\n        FOO: null\n        bar: \"baz\"\n").unwrap();
    assert_eq!(
        c.targets[0].args,
        BTreeMap::from([("bar".to_string(), Some("baz".to_string()))])
    );
}

#[test]
fn include_other_files() {
    let dir = temp_dir("include");
    std::fs::write(
        dir.join("compose-foo.yml"),
        "services:\n  foo:\n    build:\n     context: .\n     target: buildfoo\n    ports:\n      - 3306:3306\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let env = ComposeEnv {
        vars: BTreeMap::new(),
        working_dir: dir.clone(),
    };
    let c = parse_with(
        "include:\n  - compose-foo.yml\n\nservices:\n  bar:\n    build:\n     context: .\n     target: buildbar\n",
        &env,
    )
    .unwrap();
    assert_eq!(c.targets.len(), 2);
    assert_eq!(target(&c, "bar").target.as_deref(), Some("buildbar"));
    assert_eq!(target(&c, "foo").target.as_deref(), Some("buildfoo"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn project_name_interpolates() {
    let yaml = "services:\n  scratch:\n    build:\n     context: ./webapp\n     args:\n       PROJECT_NAME: ${COMPOSE_PROJECT_NAME}\n";
    let c = parse(yaml).unwrap();
    assert_eq!(arg(&c.targets[0], "PROJECT_NAME").as_deref(), Some("bake"));
    let c = parse_with(yaml, &env_of(&[("COMPOSE_PROJECT_NAME", "foo")])).unwrap();
    assert_eq!(arg(&c.targets[0], "PROJECT_NAME").as_deref(), Some("foo"));
    let c = parse(&format!("name: proj\n{yaml}")).unwrap();
    assert_eq!(arg(&c.targets[0], "PROJECT_NAME").as_deref(), Some("proj"));
}

#[test]
fn service_contexts_link_targets() {
    let c = parse(
        r#"
services:
  base.1:
    build:
      dockerfile: baseapp.Dockerfile
    command: ./entrypoint.sh
  foo.1:
    build:
      dockerfile: fooapp.Dockerfile
  base:
    build:
      dockerfile: baseapp.Dockerfile
  webapp:
    build:
      context: ./dir
      additional_contexts:
        base: service:base.1
        other: service:base
      x-bake:
        contexts:
          foo: target:foo.1
"#,
    )
    .unwrap();
    assert_eq!(
        c.groups[0].target_names(),
        ["base", "base_1", "foo_1", "webapp"]
    );
    assert_eq!(
        target(&c, "webapp").contexts,
        BTreeMap::from([
            ("base".to_string(), "target:base_1".to_string()),
            ("foo".to_string(), "target:foo_1".to_string()),
            ("other".to_string(), "target:base".to_string()),
        ])
    );
}

#[test]
fn unknown_build_fields_and_empty_files() {
    assert_eq!(
        parse("services:\n  webapp:\n    build:\n     context: .\n     foo: bar\n")
            .unwrap_err()
            .to_string(),
        "services.webapp.build additional properties 'foo' not allowed"
    );
    assert_eq!(parse("").unwrap_err().to_string(), "empty compose file");
    assert_eq!(
        parse("services:\n  a b:\n    build: .\n")
            .unwrap_err()
            .to_string(),
        "services additional properties 'a b' not allowed"
    );
    assert_eq!(
        parse("services:\n  a:\n    build: [1]\n")
            .unwrap_err()
            .to_string(),
        "services.a.build: invalid type []interface {} for build"
    );
    assert_eq!(
        parse("services:\n  a:\n    build:\n      target: [x]\n")
            .unwrap_err()
            .to_string(),
        "services.a.build.target must be a string"
    );
}

#[test]
fn attests_pull_and_no_cache() {
    let c = parse("services:\n  app:\n    build:\n      context: .\n      sbom: true\n      provenance: mode=max\n      pull: true\n      no_cache: true\n").unwrap();
    let t = &c.targets[0];
    assert_eq!(
        strings(&t.attest),
        ["type=provenance,mode=max", "type=sbom"]
    );
    assert_eq!((t.pull, t.no_cache), (Some(true), Some(true)));
    let c = parse("services:\n  app:\n    build:\n      context: .\n      sbom: false\n      provenance: false\n").unwrap();
    let t = &c.targets[0];
    assert!(t.attest.iter().flatten().all(|a| a.disabled));
    assert_eq!(t.attest.as_ref().map(Vec::len), Some(2));
}

#[test]
fn interpolation_errors_name_the_path() {
    assert_eq!(
        parse("services:\n  a:\n    build:\n      args:\n        X: ${FOO:?nope}\n")
            .unwrap_err()
            .to_string(),
        "error while interpolating services.a.build.args.X: required variable FOO is missing a value: nope"
    );
    assert_eq!(
        parse("services:\n  a:\n    build:\n      args:\n        X: ${FOO\n")
            .unwrap_err()
            .to_string(),
        "invalid interpolation format for services.a.build.args.X.\nYou may need to escape any $ with another $.\n${FOO"
    );
}

#[test]
fn override_files_merge_like_compose() {
    let files = [
        file(
            "docker-compose.yml",
            "version: \"3\"\nservices:\n  db:\n    build: .\n    image: docker.io/tonistiigi/db\n  webapp:\n    build:\n      dockerfile: Dockerfile.webapp\n      args:\n        buildno: 1\n      tags: [a]\n",
        ),
        file(
            "docker-compose2.yml",
            "version: \"3\"\nservices:\n  newservice:\n    build: .\n  webapp:\n    build:\n      args:\n        buildno2: 12\n      tags: [b, a]\n",
        ),
        file(
            "docker-compose3.yml",
            "version: \"3\"\nservices:\n  webapp:\n    entrypoint: echo 1\n",
        ),
    ];
    let c = parse_compose_files(&files, &env_of(&[])).unwrap();
    assert_eq!(c.targets.len(), 3);
    let web = target(&c, "webapp");
    assert_eq!(web.dockerfile.as_deref(), Some("Dockerfile.webapp"));
    assert_eq!(web.context.as_deref(), Some("."));
    assert_eq!(arg(web, "buildno").as_deref(), Some("1"));
    assert_eq!(arg(web, "buildno2").as_deref(), Some("12"));
    assert_eq!(web.tags.as_deref().unwrap(), ["a", "b"]);
    // `!reset` drops what earlier files set; `!override` replaces it.
    let files = [
        file(
            "a.yml",
            "services:\n  w:\n    build:\n      context: .\n      args:\n        A: 1\n      tags: [x]\n",
        ),
        file(
            "b.yml",
            "services:\n  w:\n    build:\n      args: !reset {}\n      tags: !override [y]\n",
        ),
    ];
    let c = parse_compose_files(&files, &env_of(&[])).unwrap();
    let w = target(&c, "w");
    assert!(w.args.is_empty());
    assert_eq!(w.tags.as_deref().unwrap(), ["y"]);
}

#[test]
fn extends_services() {
    let c = parse(
        "services:\n  base:\n    build:\n      context: ./b\n      args:\n        A: 1\n  app:\n    extends: base\n    build:\n      args:\n        B: 2\n",
    )
    .unwrap();
    let app = target(&c, "app");
    assert_eq!(app.context.as_deref(), Some("b"));
    assert_eq!(arg(app, "A").as_deref(), Some("1"));
    assert_eq!(arg(app, "B").as_deref(), Some("2"));
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let c = parse(
        "x-common: &common\n  context: ./c\n  args:\n    A: 1\nservices:\n  one:\n    build:\n      <<: *common\n      target: t1\n",
    )
    .unwrap();
    let one = target(&c, "one");
    assert_eq!(one.context.as_deref(), Some("c"));
    assert_eq!(arg(one, "A").as_deref(), Some("1"));
    assert_eq!(one.target.as_deref(), Some("t1"));
}

#[test]
fn sizes_print_like_go_units() {
    assert_eq!(bytes_size(128 * 1024 * 1024), "128MiB");
    assert_eq!(bytes_size(1536), "1.5KiB");
    assert_eq!(bytes_size(1000), "1000B");
    assert_eq!(bytes_size(1024 * 1024 * 1024 + 1), "1GiB");
}
