//! End to end from bake files to buildx's `--print` / `--list` output: the fixtures'
//! expected outputs were written by `docker buildx bake` 0.29.1 from the same files, and
//! buildx's `bake_test.go` cases that need HCL text.

#![allow(clippy::unwrap_used)] // a test may panic on what it checks

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brix_bake::compose::ComposeEnv;
use brix_bake::hcl::EvalOptions;
use brix_bake::overrides::FlagOverrides;
use brix_bake::print::parse_list;
use brix_bake::{File, ReadOptions, Resolved};

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn options(dir: &Path, env: &[(&str, &str)]) -> ReadOptions {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ReadOptions {
        eval: EvalOptions {
            env: env.clone(),
            cmd_context: "cwd://".to_string(),
            local_platform: "linux/amd64".to_string(),
            ..EvalOptions::default()
        },
        compose_env: ComposeEnv::with_dot_env(env, dir.to_path_buf()).unwrap(),
    }
}

fn read(dir: &Path, names: &[&str]) -> Vec<File> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    brix_bake::lookup::read_local_files(&names, dir, &mut std::io::empty()).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn print(
    dir: &Path,
    names: &[&str],
    targets: &[&str],
    sets: &[&str],
    flags: &FlagOverrides,
) -> String {
    let opts = options(dir, &[("HOME", "/root")]);
    let mut sets = strings(sets);
    sets.extend(flags.to_set_values().unwrap());
    let resolved =
        brix_bake::read_targets(&read(dir, names), &strings(targets), &sets, &opts).unwrap();
    brix_bake::print(&resolved, &opts).unwrap()
}

fn expected(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn hcl_print_matches_buildx() {
    let dir = fixtures("hcl");
    let none = FlagOverrides::default();
    assert_eq!(
        print(&dir, &[], &["all"], &[], &none),
        expected(&dir, "all.json")
    );
    let flags = FlagOverrides {
        push: true,
        load: true,
        ..FlagOverrides::default()
    };
    assert_eq!(
        print(
            &dir,
            &[],
            &["app", "worker"],
            &[
                "*.platform=linux/arm64",
                "app.args.NEW=1",
                "worker.tags+=extra"
            ],
            &flags
        ),
        expected(&dir, "set.json")
    );
}

#[test]
fn hcl_lists_match_buildx() {
    let dir = fixtures("hcl");
    let opts = options(&dir, &[]);
    let definition = brix_bake::parse_files(&read(&dir, &[]), &opts).unwrap();
    assert_eq!(
        brix_bake::list(&definition, parse_list("targets").unwrap()),
        expected(&dir, "list-targets.txt")
    );
    assert_eq!(
        brix_bake::list(
            &definition,
            parse_list("type=variables,format=json").unwrap()
        ),
        expected(&dir, "list-vars.json")
    );
}

#[test]
fn compose_print_matches_buildx() {
    let dir = fixtures("compose");
    assert_eq!(
        print(&dir, &[], &[], &[], &FlagOverrides::default()),
        expected(&dir, "print.json")
    );
    let load = FlagOverrides {
        load: true,
        ..FlagOverrides::default()
    };
    assert_eq!(
        print(
            &dir,
            &[],
            &["webapp"],
            &["web*.args.X=1", "webapp.output=type=local,dest=out"],
            &load
        ),
        expected(&dir, "webapp.json")
    );
}

#[test]
fn mixed_files_match_buildx() {
    let dir = fixtures("mixed");
    let names = ["compose.yaml", "docker-bake.json", "extra.foo"];
    assert_eq!(
        print(
            &dir,
            &names,
            &["image", "svc", "other"],
            &[],
            &FlagOverrides::default()
        ),
        expected(&dir, "print.json")
    );
    let opts = options(&dir, &[]);
    let definition = brix_bake::parse_files(&read(&dir, &names), &opts).unwrap();
    assert_eq!(
        brix_bake::list(&definition, parse_list("type=targets,format=json").unwrap()),
        expected(&dir, "list.json")
    );
}

fn hcl(name: &str, text: &str) -> File {
    File {
        name: name.to_string(),
        data: text.as_bytes().to_vec(),
    }
}

fn resolve(
    files: &[File],
    targets: &[&str],
    sets: &[&str],
) -> Result<Resolved, brix_bake::BakeError> {
    let opts = options(Path::new("/nonexistent-brix-bake-dir"), &[]);
    brix_bake::read_targets(files, &strings(targets), &strings(sets), &opts)
}

#[test]
fn read_targets_mixed() {
    let fhcl = hcl(
        "docker-bake.hcl",
        r#"
group "default" {
  targets = ["image"]
}
target "nocache" {
  no-cache = true
}
group "release" {
  targets = ["image-release"]
}
target "image" {
  inherits = ["nocache"]
  output = ["type=docker"]
}
target "image-release" {
  inherits = ["image"]
  output = ["type=image,push=true"]
  tags = ["user/app:latest"]
}"#,
    );
    let fyml = hcl(
        "docker-compose.yml",
        "services:\n  addon:\n    build:\n      context: .\n      dockerfile: ./Dockerfile\n      args:\n        CT_ECR: foo\n    image: ct-addon:bar\n  aws:\n    build:\n      dockerfile: ./aws.Dockerfile\n    image: ct-fake-aws:bar\n",
    );
    let fjson = hcl(
        "docker-bake.json",
        r#"{"group": {"default": {"targets": ["image"]}}, "target": {"image": {"context": ".", "dockerfile": "Dockerfile", "output": ["type=docker"]}}}"#,
    );
    let default_group = |r: &Resolved| r.groups["default"].target_names().to_vec();
    let outputs = |r: &Resolved, t: &str| -> Vec<String> {
        r.targets[t]
            .outputs
            .iter()
            .flatten()
            .map(|o| o.to_string())
            .collect()
    };

    let r = resolve(std::slice::from_ref(&fhcl), &["default"], &[]).unwrap();
    assert_eq!(default_group(&r), ["image"]);
    assert_eq!(outputs(&r, "image"), ["type=docker"]);
    assert_eq!(r.targets["image"].no_cache, Some(true));

    let r = resolve(std::slice::from_ref(&fhcl), &["image-release"], &[]).unwrap();
    assert_eq!(outputs(&r, "image-release"), ["type=image,push=true"]);

    let r = resolve(
        std::slice::from_ref(&fhcl),
        &["image", "image-release"],
        &[],
    )
    .unwrap();
    assert_eq!(default_group(&r), ["image", "image-release"]);
    assert_eq!(r.targets["image"].context.as_deref(), Some("."));

    // The HCL `default` group replaces the compose one.
    let r = resolve(&[fyml.clone(), fhcl.clone()], &["default"], &[]).unwrap();
    assert_eq!(default_group(&r), ["image"]);
    assert_eq!(r.targets.len(), 1);

    let r = resolve(std::slice::from_ref(&fjson), &["default"], &[]).unwrap();
    assert_eq!(default_group(&r), ["image"]);

    let r = resolve(std::slice::from_ref(&fyml), &["default"], &[]).unwrap();
    assert_eq!(default_group(&r), ["addon", "aws"]);
    assert_eq!(
        r.targets["addon"].dockerfile.as_deref(),
        Some("./Dockerfile")
    );
    assert_eq!(
        r.targets["aws"].dockerfile.as_deref(),
        Some("./aws.Dockerfile")
    );

    let r = resolve(&[fyml, fhcl], &["addon", "aws", "image"], &[]).unwrap();
    assert_eq!(default_group(&r), ["addon", "aws", "image"]);
    assert_eq!(r.targets.len(), 3);
}

#[test]
fn unknown_extensions_are_told_apart() {
    let r = resolve(
        &[
            hcl("c1.foo", "target \"app\" {\n  context = \"dir\"\n  args = {\n    v1 = \"foo\"\n  }\n}\n"),
            hcl(
                "c2.bar",
                "services:\n  app:\n    build:\n      dockerfile: Dockerfile-alternate\n      args:\n        v2: \"bar\"\n",
            ),
        ],
        &["app"],
        &[],
    )
    .unwrap();
    let app = &r.targets["app"];
    assert_eq!(app.context.as_deref(), Some("dir"));
    assert_eq!(app.dockerfile.as_deref(), Some("Dockerfile-alternate"));
    assert_eq!(app.args["v1"].as_deref(), Some("foo"));
    assert_eq!(app.args["v2"].as_deref(), Some("bar"));
}

#[test]
fn null_variables_leave_args_unset() {
    let r = resolve(
        &[hcl(
            "docker-bake.hcl",
            "variable \"FOO\" {\n  default = null\n}\nvariable \"BAR\" {\n  default = null\n}\ntarget \"default\" {\n  args = {\n    foo = FOO\n    bar = \"baz\"\n  }\n  labels = {\n    \"com.docker.app.bar\" = BAR\n    \"com.docker.app.baz\" = \"foo\"\n  }\n}\n",
        )],
        &["default"],
        &[],
    )
    .unwrap();
    let t = &r.targets["default"];
    assert_eq!(
        t.args,
        BTreeMap::from([("bar".to_string(), Some("baz".to_string()))])
    );
    assert_eq!(
        t.labels,
        BTreeMap::from([("com.docker.app.baz".to_string(), Some("foo".to_string()))])
    );

    let r = resolve(
        &[hcl(
            "docker-bake.json",
            r#"{"variable": {"FOO": {"default": null}}, "target": {"default": {"args": {"foo": "${FOO}", "bar": "baz"}}}}"#,
        )],
        &["default"],
        &[],
    )
    .unwrap();
    assert_eq!(
        r.targets["default"].args,
        BTreeMap::from([("bar".to_string(), Some("baz".to_string()))])
    );
}

#[test]
fn matrix_names_and_globs() {
    let file = hcl(
        "docker-bake.hcl",
        r#"
group "default" {
  targets = ["foo", "foo-bar"]
}
target "foo" {}
target "foo-bar" {}
target "mtx" {
  name = "mtx-${foo}-${bar}"
  matrix = {
    foo = ["a"]
    bar = ["b", "c"]
  }
}
"#,
    );
    let keys = |r: &Resolved| r.targets.keys().cloned().collect::<Vec<_>>();
    let r = resolve(std::slice::from_ref(&file), &["mtx"], &[]).unwrap();
    assert_eq!(keys(&r), ["mtx-a-b", "mtx-a-c"]);
    let r = resolve(std::slice::from_ref(&file), &["mtx-a-b*"], &[]).unwrap();
    assert_eq!(keys(&r), ["mtx-a-b"]);
    let r = resolve(std::slice::from_ref(&file), &["*"], &[]).unwrap();
    assert_eq!(keys(&r), ["foo", "foo-bar", "mtx-a-b", "mtx-a-c"]);
    assert!(resolve(std::slice::from_ref(&file), &["aaa-*"], &[]).is_err());
}

#[test]
fn empty_variable_outputs_and_overrides() {
    let r = resolve(
        &[hcl(
            "docker-bake.hcl",
            "variable \"FOO\" {\n  default = \"\"\n}\ntarget \"app\" {\n  output = [FOO]\n}\n",
        )],
        &["app"],
        &[],
    )
    .unwrap();
    assert_eq!(r.targets["app"].outputs, None);
    let r = resolve(
        &[hcl(
            "docker-bake.hcl",
            "target \"app\" {\n  output = [\"./bin\"]\n}\n",
        )],
        &["app"],
        &["app.output="],
    )
    .unwrap();
    assert_eq!(r.targets["app"].outputs, None);
}

#[test]
fn target_names_are_validated() {
    for (name, ok) in [
        ("a", true),
        ("_a", true),
        ("AbC-0123", true),
        ("a/b", false),
        ("a.b", false),
    ] {
        let file = hcl("docker-bake.hcl", &format!("target \"{name}\" {{}}"));
        assert_eq!(resolve(&[file], &[name], &[]).is_ok(), ok, "{name}");
    }
}

#[test]
fn no_files_is_no_definition() {
    assert_eq!(
        resolve(&[], &[], &[]).unwrap_err().to_string(),
        "couldn't find a bake definition"
    );
}
