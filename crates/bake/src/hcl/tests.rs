//! Evaluation tests, most ported from buildx's bake/hcl_test.go and bake_test.go.

use std::collections::BTreeMap;

use super::*;
use crate::raw::{BlockKind, RawBlock};

fn files(specs: &[(&str, &str)]) -> Vec<crate::File> {
    specs
        .iter()
        .map(|(name, data)| crate::File {
            name: name.to_string(),
            data: data.as_bytes().to_vec(),
        })
        .collect()
}

fn opts(env: &[(&str, &str)]) -> EvalOptions {
    EvalOptions {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cmd_context: "cwd://".into(),
        local_platform: "linux/amd64".into(),
        ..Default::default()
    }
}

fn parse_env(name: &str, data: &str, env: &[(&str, &str)]) -> Result<RawConfig, Diagnostics> {
    parse_files(&files(&[(name, data)]), &opts(env))
}

fn parse_ok(name: &str, data: &str) -> RawConfig {
    match parse_env(name, data, &[]) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn parse_err(name: &str, data: &str, env: &[(&str, &str)]) -> String {
    match parse_env(name, data, env) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn targets(c: &RawConfig) -> Vec<&RawBlock> {
    c.blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Target)
        .collect()
}

fn groups(c: &RawConfig) -> Vec<&RawBlock> {
    c.blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Group)
        .collect()
}

fn target<'c>(c: &'c RawConfig, name: &str) -> &'c RawBlock {
    c.blocks
        .iter()
        .rev()
        .find(|b| b.kind == BlockKind::Target && b.name == name)
        .unwrap_or_else(|| panic!("no target {name} in {c:?}"))
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn strings(items: &[&str]) -> Value {
    Value::List(items.iter().map(|i| s(i)).collect())
}

fn arg(block: &RawBlock, key: &str) -> Value {
    match block.attributes.get("args") {
        Some(Value::Object(m)) => m.get(key).cloned().unwrap_or(Value::Null),
        other => panic!("no args in {other:?}"),
    }
}

fn attr<'b>(block: &'b RawBlock, name: &str) -> &'b Value {
    block
        .attributes
        .get(name)
        .unwrap_or_else(|| panic!("no attribute {name} in {block:?}"))
}

#[test]
fn basic() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		group "default" {
			targets = ["db", "webapp"]
		}

		target "db" {
			context = "./db"
			tags = ["docker.io/tonistiigi/db"]
			output = ["type=image"]
		}

		target "webapp" {
			context = "./dir"
			dockerfile = "Dockerfile-alternate"
			args = {
				buildno = "123"
			}
			output = [
				{ type = "image" }
			]
		}

		target "cross" {
			platforms = [
				"linux/amd64",
				"linux/arm64"
			]
		}

		target "webapp-plus" {
			inherits = ["webapp", "cross"]
			args = {
				IAMCROSS = "true"
			}
		}
		"#,
    );
    let g = groups(&c);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].name, "default");
    assert_eq!(attr(g[0], "targets"), &strings(&["db", "webapp"]));
    let t = targets(&c);
    assert_eq!(
        t.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["db", "webapp", "cross", "webapp-plus"]
    );
    assert_eq!(attr(t[0], "context"), &s("./db"));
    assert_eq!(arg(t[1], "buildno"), s("123"));
    assert_eq!(
        attr(t[2], "platforms"),
        &strings(&["linux/amd64", "linux/arm64"])
    );
    assert_eq!(attr(t[3], "inherits"), &strings(&["webapp", "cross"]));
    assert_eq!(
        attr(t[1], "output"),
        &Value::List(vec![Value::Object(BTreeMap::from([(
            "type".to_string(),
            s("image")
        )]))])
    );
    // Positions point at the block header.
    let p = t[0].position.clone().unwrap();
    assert_eq!(
        (p.file.as_str(), p.line, p.column),
        ("docker-bake.hcl", 6, 3)
    );
}

#[test]
fn basic_in_json() {
    let c = parse_ok(
        "docker-bake.json",
        r#"
		{
			"group": {
				"default": {
					"targets": ["db", "webapp"]
				}
			},
			"target": {
				"db": {
					"context": "./db",
					"tags": ["docker.io/tonistiigi/db"]
				},
				"webapp": {
					"context": "./dir",
					"dockerfile": "Dockerfile-alternate",
					"args": {
						"buildno": "123"
					}
				},
				"cross": {
					"platforms": [
						"linux/amd64",
						"linux/arm64"
					]
				},
				"webapp-plus": {
					"inherits": ["webapp", "cross"],
					"args": {
						"IAMCROSS": "true"
					}
				}
			}
		}
		"#,
    );
    assert_eq!(attr(groups(&c)[0], "targets"), &strings(&["db", "webapp"]));
    let t = targets(&c);
    assert_eq!(t.len(), 4);
    assert_eq!(attr(t[0], "context"), &s("./db"));
    assert_eq!(arg(t[1], "buildno"), s("123"));
    assert_eq!(arg(t[3], "IAMCROSS"), s("true"));
}

#[test]
fn functions_and_user_functions() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		function "increment" {
			params = [number]
			result = number + 1
		}
		target "webapp" {
			args = {
				buildno = "${add(123, 1)}"
				other = "${increment(123)}"
			}
		}
		"#,
    );
    assert_eq!(arg(target(&c, "webapp"), "buildno"), s("124"));
    assert_eq!(arg(target(&c, "webapp"), "other"), s("124"));
}

#[test]
fn variables_and_env_override() {
    let dt = r#"
		variable "BUILD_NUMBER" {
			default = "123"
		}
		target "webapp" {
			args = {
				buildno = "${BUILD_NUMBER}"
			}
		}
		"#;
    let c = parse_ok("docker-bake.hcl", dt);
    assert_eq!(arg(target(&c, "webapp"), "buildno"), s("123"));
    let c = parse_env("docker-bake.hcl", dt, &[("BUILD_NUMBER", "456")]).unwrap();
    assert_eq!(arg(target(&c, "webapp"), "buildno"), s("456"));
}

#[test]
fn variables_in_functions() {
    let dt = r#"
		variable "REPO" {
			default = "user/repo"
		}
		function "tag" {
			params = [tag]
			result = ["${REPO}:${tag}"]
		}
		target "webapp" {
			tags = tag("v1")
		}
		"#;
    let c = parse_ok("docker-bake.hcl", dt);
    assert_eq!(
        attr(target(&c, "webapp"), "tags"),
        &strings(&["user/repo:v1"])
    );
    let c = parse_env("docker-bake.hcl", dt, &[("REPO", "docker/buildx")]).unwrap();
    assert_eq!(
        attr(target(&c, "webapp"), "tags"),
        &strings(&["docker/buildx:v1"])
    );
}

#[test]
fn multi_file_shared_variables_and_vars_with_vars() {
    let dt = r#"
		variable "FOO" {
			default = upper("${BASE}def")
		}
		variable "BAR" {
			default = "-${FOO}-"
		}
		target "app" {
			args = {
				v1 = "pre-${BAR}"
			}
		}
		"#;
    let dt2 = r#"
		variable "BASE" {
			default = "abc"
		}
		target "app" {
			args = {
				v2 = "${FOO}-post"
			}
		}
		"#;
    let fs = files(&[("c1.hcl", dt), ("c2.hcl", dt2)]);
    let c = parse_files(&fs, &opts(&[])).unwrap();
    let t = targets(&c);
    assert_eq!(
        t.len(),
        2,
        "repeated blocks are kept for the model to merge"
    );
    assert_eq!(arg(t[0], "v1"), s("pre--ABCDEF-"));
    assert_eq!(arg(t[1], "v2"), s("ABCDEF-post"));
    let c = parse_files(&fs, &opts(&[("BASE", "new")])).unwrap();
    assert_eq!(arg(targets(&c)[0], "v1"), s("pre--NEWDEF-"));
}

#[test]
fn typed_variables_from_untyped_defaults() {
    let dt = r#"
		variable "FOO" {
			default = 3
		}
		variable "IS_FOO" {
			default = true
		}
		target "app" {
			args = {
				v1 = FOO > 5 ? "higher" : "lower"
				v2 = IS_FOO ? "yes" : "no"
			}
		}
		"#;
    let c = parse_ok("docker-bake.hcl", dt);
    assert_eq!(arg(target(&c, "app"), "v1"), s("lower"));
    assert_eq!(arg(target(&c, "app"), "v2"), s("yes"));
    let c = parse_env("docker-bake.hcl", dt, &[("FOO", "5.1"), ("IS_FOO", "0")]).unwrap();
    assert_eq!(arg(target(&c, "app"), "v1"), s("higher"));
    assert_eq!(arg(target(&c, "app"), "v2"), s("no"));
    let e = parse_err("docker-bake.hcl", dt, &[("FOO", "NaN")]);
    assert!(e.contains("failed to parse FOO as number"), "{e}");
    let e = parse_err("docker-bake.hcl", dt, &[("FOO", "0"), ("IS_FOO", "maybe")]);
    assert!(e.contains("failed to parse IS_FOO as bool"), "{e}");
}

#[test]
fn null_variables() {
    let dt = r#"
		variable "FOO" {
			default = null
		}
		target "default" {
			args = {
				foo = FOO
			}
		}"#;
    let c = parse_ok("docker-bake.hcl", dt);
    assert_eq!(arg(target(&c, "default"), "foo"), Value::Null);
    let c = parse_env("docker-bake.hcl", dt, &[("FOO", "bar")]).unwrap();
    assert_eq!(arg(target(&c, "default"), "foo"), s("bar"));

    let json = r#"{
		"variable": { "FOO": { "default": null } },
		"target": { "default": { "args": { "foo": "${FOO}" } } }
	}"#;
    let c = parse_ok("docker-bake.json", json);
    assert_eq!(arg(target(&c, "default"), "foo"), Value::Null);
    let c = parse_env("docker-bake.json", json, &[("FOO", "bar")]).unwrap();
    assert_eq!(arg(target(&c, "default"), "foo"), s("bar"));
}

#[test]
fn typed_null_and_valueless_variables() {
    for ty in [
        "any",
        "string",
        "number",
        "bool",
        "list(string)",
        "set(string)",
        "map(string)",
        "tuple([string])",
        "object({val: string})",
    ] {
        for default in ["default = null", ""] {
            let dt = format!(
                "variable \"FOO\" {{\n type = {ty}\n {default}\n}}\ntarget \"default\" {{\n args = {{\n foo = equal(FOO, null)\n }}\n}}"
            );
            let c = parse_ok("docker-bake.hcl", &dt);
            assert_eq!(
                arg(target(&c, "default"), "foo"),
                s("true"),
                "{ty} {default}"
            );
        }
    }
}

#[test]
fn variable_cycle() {
    let e = parse_err(
        "docker-bake.hcl",
        r#"
		variable "FOO" {
			default = BAR
		}
		variable "FOO2" {
			default = FOO
		}
		variable "BAR" {
			default = FOO
		}
		target "app" {}
		"#,
        &[],
    );
    assert!(e.contains("variable cycle not allowed"), "{e}");
}

#[test]
fn top_level_attributes() {
    let dt = r#"
		FOO="abc"
		BAR="attr-${FOO}def"
		target "app" {
			args = {
				"v1": BAR
			}
		}
		"#;
    let c = parse_ok("docker-bake.hcl", dt);
    assert_eq!(arg(target(&c, "app"), "v1"), s("attr-abcdef"));
    // The environment does not apply without a variable block.
    let c = parse_env("docker-bake.hcl", dt, &[("FOO", "bar")]).unwrap();
    assert_eq!(arg(target(&c, "app"), "v1"), s("attr-abcdef"));
}

#[test]
fn target_attribute_references() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		target "foo" {
			dockerfile = "xxx"
			context = target.bar.context
			target = target.foo.dockerfile
		}

		target "bar" {
			dockerfile = target.foo.dockerfile
			context = "yyy"
			target = target.bar.context
		}
		"#,
    );
    let foo = target(&c, "foo");
    assert_eq!(attr(foo, "dockerfile"), &s("xxx"));
    assert_eq!(attr(foo, "context"), &s("yyy"));
    assert_eq!(attr(foo, "target"), &s("xxx"));
    let bar = target(&c, "bar");
    assert_eq!(attr(bar, "dockerfile"), &s("xxx"));
    assert_eq!(attr(bar, "context"), &s("yyy"));
    assert_eq!(attr(bar, "target"), &s("yyy"));
}

#[test]
fn target_references_from_globals_names_and_empty_chains() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		target "foo" {
			dockerfile = "x"
		}
		x = target.foo.dockerfile
		y = x
		target "bar" {
			dockerfile = y
		}
		target "baz" {
			dockerfile = target.baz.name
		}
		target "chain" {
			context = target.chain.dockerfile
			target = target.chain.context
		}
		"#,
    );
    assert_eq!(attr(target(&c, "bar"), "dockerfile"), &s("x"));
    assert_eq!(attr(target(&c, "baz"), "dockerfile"), &s("baz"));
    let chain = target(&c, "chain");
    assert_eq!(attr(chain, "context"), &Value::Null);
    assert_eq!(attr(chain, "target"), &Value::Null);
}

#[test]
fn attributes_of_custom_types() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		platforms=["linux/arm64", "linux/amd64"]
		target "app" {
			platforms = platforms
			args = {
				"v1": platforms[0]
			}
		}
		"#,
    );
    let app = target(&c, "app");
    assert_eq!(
        attr(app, "platforms"),
        &strings(&["linux/arm64", "linux/amd64"])
    );
    assert_eq!(arg(app, "v1"), s("linux/arm64"));
}

#[test]
fn structured_attributes_referenced_through_the_hook() {
    fn parse_entries(_attr: &str, value: &Value) -> Result<Value, String> {
        let Value::List(items) = value else {
            return Ok(value.clone());
        };
        let parsed = items
            .iter()
            .map(|item| match item {
                Value::String(text) => Value::Object(
                    text.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), s(v)))
                        .collect(),
                ),
                other => other.clone(),
            })
            .collect();
        Ok(Value::List(parsed))
    }
    let mut o = opts(&[]);
    o.structured_attribute = Some(parse_entries);
    let c = parse_files(
        &files(&[(
            "docker-bake.hcl",
            r#"
	target "app" {
		cache-from = [
			{ type = "registry", ref = "user/app:cache" },
			"type=local,src=path/to/cache",
		]
		cache-to = [ target.app.cache-from[0] ]
		output = [
			{ type = "oci", dest = "../out.tar" },
			"type=local,dest=../out",
		]
		ssh = [
			{ id = "key", paths = ["path/to/${target.app.output[0].type}"] },
		]
	}
	target "web" {
		cache-from = target.app.cache-from
		secret = [
			{ id = target.app.output[0].type, src = "/${target.app.cache-from[1].type}/secret" },
		]
	}
	"#,
        )]),
        &o,
    )
    .unwrap();
    let app = target(&c, "app");
    let obj = |pairs: &[(&str, &str)]| {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), s(v))).collect())
    };
    assert_eq!(
        attr(app, "cache-to"),
        &Value::List(vec![obj(&[
            ("type", "registry"),
            ("ref", "user/app:cache")
        ])])
    );
    assert_eq!(
        attr(app, "ssh"),
        &Value::List(vec![Value::Object(BTreeMap::from([
            ("id".to_string(), s("key")),
            ("paths".to_string(), strings(&["path/to/oci"])),
        ]))])
    );
    let web = target(&c, "web");
    assert_eq!(
        attr(web, "secret"),
        &Value::List(vec![Value::Object(BTreeMap::from([
            ("id".to_string(), s("oci")),
            ("src".to_string(), s("/local/secret")),
            ("env".to_string(), Value::Null),
        ]))])
    );
}

#[test]
fn missing_variables_are_all_reported() {
    let e = parse_env(
        "docker-bake.hcl",
        r#"
	target "app" {
		attest = [
			"type=sbom,disabled=${SBOM}",
		]
		cache-from = [
			{ type = "registry", ref = "user/app:${FOO1}" },
      "type=local,src=path/to/cache:${FOO2}",
		]
		cache-to = [
			{ type = "local", dest = "path/to/${BAR}" },
		]
		output = [
			{ type = "oci", dest = "../${OUTPUT}.tar" },
		]
		secret = [
			{ id = "mysecret", src = "/local/${SECRET}" },
		]
		ssh = [
			{ id = "key", paths = ["path/to/${SSH_KEY}"] },
		]
	}
	"#,
        &[],
    )
    .unwrap_err();
    let mut names: Vec<String> = e
        .diagnostics
        .iter()
        .filter_map(|d| {
            d.detail
                .strip_prefix("There is no variable named \"")
                .and_then(|rest| rest.split('"').next())
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["BAR", "FOO1", "FOO2", "OUTPUT", "SBOM", "SECRET", "SSH_KEY"]
    );
}

#[test]
fn multi_file_attributes_override_defaults() {
    let dt = r#"
		variable "FOO" {
			default = "abc"
		}
		target "app" {
			args = {
				v1 = "pre-${FOO}"
			}
		}
		"#;
    let fs = files(&[("c1.hcl", dt), ("c2.hcl", "FOO=\"def\"")]);
    let c = parse_files(&fs, &opts(&[])).unwrap();
    assert_eq!(arg(target(&c, "app"), "v1"), s("pre-def"));
    let c = parse_files(&fs, &opts(&[("FOO", "ghi")])).unwrap();
    assert_eq!(arg(target(&c, "app"), "v1"), s("pre-ghi"));

    let fs = files(&[
        (
            "c1.hcl",
            "FOO = \"abc\"\ntarget \"app\" {\n args = {\n v1 = \"pre-${FOO}\"\n }\n}",
        ),
        ("c2.hcl", "FOO = \"def\""),
    ]);
    let c = parse_files(&fs, &opts(&[])).unwrap();
    assert_eq!(arg(target(&c, "app"), "v1"), s("pre-def"));
}

#[test]
fn rename_requires_matrix_and_groups_refuse_it() {
    let e = parse_err(
        "docker-bake.hcl",
        "target \"abc\" {\n name = \"xyz\"\n dockerfile = \"foo\"\n}",
        &[],
    );
    assert!(e.contains("requires matrix"), "{e}");
    assert_eq!(
        e,
        "docker-bake.hcl:1,8-13: Invalid name; name requires matrix"
    );
    let e = parse_err(
        "docker-bake.hcl",
        "group \"foo\" {\n name = \"bar\"\n targets = [\"x\", \"y\"]\n}",
        &[],
    );
    assert!(e.contains("not supported"), "{e}");
    let e = parse_err(
        "docker-bake.hcl",
        "group \"foo\" {\n matrix = {\n name = [\"x\", \"y\"]\n }\n}",
        &[],
    );
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn renamed_targets_are_referenced_by_their_new_name() {
    for dt in [
        "target \"abc\" {\n name = \"xyz\"\n matrix = {}\n dockerfile = \"foo\"\n}\ntarget \"def\" {\n dockerfile = target.xyz.dockerfile\n}",
        "target \"def\" {\n dockerfile = target.xyz.dockerfile\n}\ntarget \"abc\" {\n name = \"xyz\"\n matrix = {}\n dockerfile = \"foo\"\n}",
    ] {
        let c = parse_ok("docker-bake.hcl", dt);
        assert_eq!(attr(target(&c, "xyz"), "dockerfile"), &s("foo"));
        assert_eq!(attr(target(&c, "def"), "dockerfile"), &s("foo"));
    }
    for dt in [
        "target \"abc\" {\n name = \"xyz\"\n matrix = {}\n dockerfile = \"foo\"\n}\ntarget \"def\" {\n dockerfile = target.abc.dockerfile\n}",
        "target \"def\" {\n dockerfile = target.abc.dockerfile\n}\ntarget \"abc\" {\n name = \"xyz\"\n matrix = {}\n dockerfile = \"foo\"\n}",
    ] {
        let e = parse_err("docker-bake.hcl", dt, &[]);
        assert!(e.contains("abc"), "{e}");
    }
}

#[test]
fn rename_split_and_multi_file() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		target "x" {
			name = "y"
			matrix = {}
			dockerfile = "foo"
		}
		target "x" {
			name = "z"
			matrix = {}
			dockerfile = "bar"
		}
		"#,
    );
    let t = targets(&c);
    assert_eq!(
        t.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["y", "z"]
    );
    let g = groups(&c);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].name, "x");
    assert_eq!(attr(g[0], "targets"), &strings(&["y", "z"]));

    let c = parse_files(
        &files(&[
            (
                "c1.hcl",
                "target \"foo\" {\n name = \"bar\"\n matrix = {}\n dockerfile = \"x\"\n}",
            ),
            ("c2.hcl", "target \"foo\" {\n context = \"y\"\n}"),
            ("c3.hcl", "target \"bar\" {\n target = \"z\"\n}"),
        ]),
        &opts(&[]),
    )
    .unwrap();
    let names: Vec<&str> = targets(&c).iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["bar", "foo", "bar"]);
}

#[test]
fn matrix_basic_and_keys() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		target "default" {
			matrix = {
				foo = ["x", "y"]
			}
			name = foo
			dockerfile = "${foo}.Dockerfile"
		}
		"#,
    );
    let t = targets(&c);
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].name.as_str(), t[1].name.as_str()), ("x", "y"));
    assert_eq!(attr(t[0], "dockerfile"), &s("x.Dockerfile"));
    assert_eq!(attr(t[1], "dockerfile"), &s("y.Dockerfile"));
    assert_eq!(attr(groups(&c)[0], "targets"), &strings(&["x", "y"]));

    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		target "default" {
			matrix = {
				foo = ["a"]
				bar = ["b", "c"]
				baz = ["d", "e", "f"]
			}
			name = "${foo}-${bar}-${baz}"
		}
		"#,
    );
    let mut names: Vec<String> = targets(&c).iter().map(|b| b.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        ["a-b-d", "a-b-e", "a-b-f", "a-c-d", "a-c-e", "a-c-f"]
    );
}

#[test]
fn matrix_lists_maps_and_args() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
	target "foo" {
		matrix = {
			aa = [["aa", "bb"], ["cc", "dd"]]
		}
		name = aa[0]
		args = {
			target = "val${aa[1]}"
		}
	}
	target "bar" {
		matrix = {
			aa = [
				{
					foo = "ee"
					bar = "ff"
				},
				{
					foo = "gg"
					bar = "hh"
				}
			]
		}
		name = aa.foo
		args = {
			target = "val${aa.bar}"
		}
	}
	a = 1
	variable "b" {
		default = 2
	}
	target "default" {
		matrix = {
			foo = [a, b]
		}
		name = foo
	}
	"#,
    );
    assert_eq!(arg(target(&c, "aa"), "target"), s("valbb"));
    assert_eq!(arg(target(&c, "cc"), "target"), s("valdd"));
    assert_eq!(arg(target(&c, "ee"), "target"), s("valff"));
    assert_eq!(arg(target(&c, "gg"), "target"), s("valhh"));
    target(&c, "1");
    target(&c, "2");
}

#[test]
fn matrix_from_builtin_override() {
    let mut o = opts(&[]);
    o.extra_builtins
        .insert("ABC".to_string(), "11,22,33".to_string());
    let c = parse_files(
        &files(&[(
            "docker-bake.hcl",
            r#"
	variable "ABC" {
		default = "def"
	}
	target "bar" {
		matrix = {
			aa = split(",", ABC)
		}
		name = "bar-${aa}"
		args = {
			foo = aa
		}
	}
	"#,
        )]),
        &o,
    )
    .unwrap();
    let t = targets(&c);
    assert_eq!(
        t.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["bar-11", "bar-22", "bar-33"]
    );
    assert_eq!(arg(t[1], "foo"), s("22"));
}

#[test]
fn matrix_errors() {
    for bad in [
        "matrix = \"test\"",
        "matrix = [\"test\"]",
        "matrix = {\n [\"a\"] = [\"b\"]\n }",
        "matrix = {\n 1 = 2\n }",
        "matrix = {\n a = \"b\"\n }",
    ] {
        let dt = format!("target \"default\" {{\n {bad}\n}}");
        parse_err("docker-bake.hcl", &dt, &[]);
    }
    let e = parse_err(
        "docker-bake.hcl",
        "target \"default\" {\n matrix = {\n foo = [\"a\", \"b\"]\n }\n name = \"c\"\n}",
        &[],
    );
    assert_eq!(
        e,
        "docker-bake.hcl:1,8-17: Invalid name; duplicate name \"c\""
    );
    let e = parse_err(
        "docker-bake.hcl",
        "target \"default\" {\n matrix = \"x\"\n}",
        &[],
    );
    assert_eq!(
        e,
        "docker-bake.hcl:1,8-17: Invalid name; matrix must be a map"
    );
}

#[test]
fn matrix_with_global_target() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		target "x" {
			tags = ["a", "b"]
		}
		target "default" {
			tags = target.x.tags
			matrix = {
				dummy = [""]
			}
		}
	"#,
    );
    assert_eq!(attr(target(&c, "default"), "tags"), &strings(&["a", "b"]));
}

#[test]
fn json_attributes_and_functions() {
    let c = parse_ok(
        "docker-bake.json",
        r#"{"FOO": "abc", "variable": {"BAR": {"default": "def"}}, "target": { "app": { "args": {"v1": "pre-${FOO}-${BAR}"}} } }"#,
    );
    assert_eq!(arg(target(&c, "app"), "v1"), s("pre-abc-def"));

    let c = parse_ok(
        "docker-bake.json",
        r#"{
	"FOO": "abc",
	"function": {
		"myfunc": {
			"params": ["inp"],
			"result": "<${upper(inp)}-${FOO}>"
		}
	},
	"target": {
		"app": {
			"args": {
				"v1": "pre-${myfunc(\"foo\")}",
				"v2": "myfunc(\"foo\")"
			}
		}
	}}"#,
    );
    assert_eq!(arg(target(&c, "app"), "v1"), s("pre-<FOO-abc>"));
    assert_eq!(arg(target(&c, "app"), "v2"), s("myfunc(\"foo\")"));
}

#[test]
fn functions_in_attributes() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
	function "brace" {
		params = [inp]
		result = "[${inp}]"
	}
	function "myupper" {
		params = [val]
		result = "${upper(val)} <> ${brace(v2)}"
	}

		v1=myupper("foo")
		v2=lower("BAZ")
		target "app" {
			args = {
				"v1": v1
			}
		}
		"#,
    );
    assert_eq!(arg(target(&c, "app"), "v1"), s("FOO <> [baz]"));
}

#[test]
fn builtin_variables() {
    let mut o = opts(&[]);
    o.cmd_context = "foo".into();
    let c = parse_files(
        &files(&[(
            "c1.hcl",
            "target \"app\" {\n context = BAKE_CMD_CONTEXT\n dockerfile = \"test\"\n platforms = [BAKE_LOCAL_PLATFORM]\n}",
        )]),
        &o,
    )
    .unwrap();
    let app = target(&c, "app");
    assert_eq!(attr(app, "context"), &s("foo"));
    assert_eq!(attr(app, "platforms"), &strings(&["linux/amd64"]));
}

#[test]
fn hcl_and_json_files_combine() {
    let c = parse_files(
        &files(&[
            (
                "docker-bake.hcl",
                r#"
variable "ABC" {
  default = "foo"
}
variable "DEF" {
  default = ""
}
group "default" {
  targets = ["one"]
}
target "one" {
  args = {
    a = "pre-${ABC}"
  }
}
target "two" {
  args = {
    b = "pre-${DEF}"
  }
}"#,
            ),
            (
                "foo.json",
                r#"{"variable": {"DEF": {"default": "bar"}}, "target": { "one": { "args": {"a": "pre-${ABC}-${DEF}"}} } }"#,
            ),
            ("bar.json", r#"{"ABC": "ghi", "DEF": "jkl"}"#),
            (
                "metadata-a.json",
                r#"{"target": [{"metadata-a": [{"tags": ["app/a:1.0.0", "app/a:latest"]}]}]}"#,
            ),
        ]),
        &opts(&[]),
    )
    .unwrap();
    let t = targets(&c);
    assert_eq!(arg(t[0], "a"), s("pre-ghi"));
    assert_eq!(arg(t[1], "b"), s("pre-jkl"));
    assert_eq!(arg(t[2], "a"), s("pre-ghi-jkl"));
    assert_eq!(
        attr(target(&c, "metadata-a"), "tags"),
        &strings(&["app/a:1.0.0", "app/a:latest"])
    );
}

#[test]
fn empty_variables() {
    let c = parse_ok(
        "docker-bake.hcl",
        "variable \"FOO\" {}\ntarget \"default\" {\n args = {\n foo = equal(FOO, \"\")\n }\n}",
    );
    assert_eq!(arg(target(&c, "default"), "foo"), s("true"));
    parse_ok("docker-bake.json", r#"{"variable": {"VAR": {}}}"#);
}

#[test]
fn function_definition_errors() {
    let e = parse_err(
        "docker-bake.hcl",
        "function \"foo\" {\n result = \"bar\"\n}\ntarget \"foo_target\" {\n args = {\n test = foo()\n }\n}",
        &[],
    );
    assert_eq!(
        e,
        "docker-bake.hcl:1,10-15: Invalid function; empty params not allowed for foo"
    );
    let e = parse_err(
        "docker-bake.hcl",
        "function \"foo\" {\n params = [\"a\"]\n}",
        &[],
    );
    assert!(e.contains("empty result not allowed for foo"), "{e}");
}

#[test]
fn unsupported_override_of_untyped_list() {
    let e = parse_err(
        "docker-bake.hcl",
        "variable \"FOO\" {\n default = []\n}\ntarget \"default\" {}",
        &[("FOO", "bar")],
    );
    assert!(e.contains("unsupported type tuple for variable FOO"), "{e}");
}

#[test]
fn indexof_and_matrix_names() {
    let c = parse_ok(
        "docker-bake.hcl",
        r#"
		variable "APP_VERSIONS" {
		  default = [
			"1.42.4",
			"1.42.3"
		  ]
		}
		target "default" {
			args = {
				APP_VERSION = app_version
			}
			matrix = {
				app_version = APP_VERSIONS
			}
			name="app-${replace(app_version, ".", "-")}"
			tags = [
				"app:${app_version}",
				indexof(APP_VERSIONS, app_version) == 0 ? "app:latest" : "",
			]
		}
		"#,
    );
    let t = targets(&c);
    assert_eq!(t[0].name, "app-1-42-4");
    assert_eq!(attr(t[0], "tags"), &strings(&["app:1.42.4", "app:latest"]));
    assert_eq!(t[1].name, "app-1-42-3");
    assert_eq!(attr(t[1], "tags"), &strings(&["app:1.42.3", ""]));
}

#[test]
fn variable_type_specifications() {
    for ty in [
        "bool",
        "number",
        "string",
        "any",
        "list(string)",
        "set(string)",
        "tuple([string, number])",
    ] {
        parse_ok(
            "docker-bake.hcl",
            &format!("variable \"FOO\" {{\n type = {ty}\n}}\ntarget \"default\" {{}}"),
        );
    }
    for ty in ["boolean", "BOOL", "lower(\"bool\")"] {
        let e = parse_err(
            "docker-bake.hcl",
            &format!("variable \"FOO\" {{\n type = {ty}\n}}\ntarget \"default\" {{}}"),
            &[],
        );
        assert!(e.contains("not a valid type"), "{e}");
    }
}

#[test]
fn default_type_enforcement() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("number", "99", "FOO + 1", Some("100")),
        ("number", "\"99\"", "FOO + 1", Some("100")),
        ("bool", "true", "and(FOO, true)", Some("true")),
        ("bool", "\"true\"", "and(FOO, true)", Some("true")),
        ("number", "\"oops\"", "FOO", None),
        (
            "list(number)",
            "[2,3]",
            "join(\"\", [for v in FOO: v + 1])",
            Some("34"),
        ),
        (
            "list(number)",
            "[\"2\",\"3\"]",
            "join(\"\", [for v in FOO: v + 1])",
            Some("34"),
        ),
        ("list(number)", "[\"oops\"]", "FOO", None),
    ];
    for (ty, default, arg_value, want) in cases {
        let dt = format!(
            "variable \"FOO\" {{\n type = {ty}\n default = {default}\n}}\ntarget \"default\" {{\n args = {{\n foo = {arg_value}\n }}\n}}"
        );
        match want {
            Some(v) => {
                let c = parse_ok("docker-bake.hcl", &dt);
                assert_eq!(arg(target(&c, "default"), "foo"), s(v), "{ty} {default}");
            }
            None => {
                let e = parse_err("docker-bake.hcl", &dt, &[]);
                assert!(e.contains("invalid type"), "{e}");
            }
        }
    }
}

#[test]
fn default_from_attribute_type_enforcement() {
    let cases: &[(&str, &str, bool)] = &[
        ("\"hello\"", "string", false),
        ("\"99\"", "number", false),
        ("substr(\"99 bottles\", 0, 2)", "number", false),
        ("split(\",\", \"1,2,3foo\")", "list(number)", true),
        ("99", "bool", true),
        ("split(\",\", \"1,2,3\")", "list(number)", false),
    ];
    for (value, ty, fails) in cases {
        let dt = format!(
            "BAR = {value}\nvariable \"FOO\" {{\n type = {ty}\n default = BAR\n}}\ntarget \"default\" {{}}"
        );
        if *fails {
            let e = parse_err("docker-bake.hcl", &dt, &[]);
            assert!(
                e.contains("invalid type") && e.contains("FOO default value"),
                "{e}"
            );
        } else {
            parse_ok("docker-bake.hcl", &dt);
        }
    }
}

#[test]
fn typed_overrides() {
    // (type, override, arg expression, expected value or error fragment)
    let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
        ("bool", "true", "FOO", Ok("true")),
        ("number", "99", "FOO", Ok("99")),
        ("string", "hello", "FOO", Ok("hello")),
        ("string", "\"hello\"", "FOO", Ok("\"hello\"")),
        (
            "list(string)",
            "hi,there",
            "join(\"-\", FOO)",
            Ok("hi-there"),
        ),
        (
            "list(number)",
            "3,1,4",
            "join(\"-\", [for v in FOO: v + 1])",
            Ok("4-2-5"),
        ),
        (
            "set(number)",
            "3,1,4",
            "join(\"-\", [for v in sort(FOO): v + 1])",
            Ok("2-4-5"),
        ),
        (
            "map(number)",
            "foo:1,bar:2",
            "join(\"-\", sort(values(FOO)))",
            Ok("1-2"),
        ),
        (
            "tuple([number,string])",
            "99,bottles",
            "format(\"%d %s\", FOO[0], FOO[1])",
            Ok("99 bottles"),
        ),
        (
            "tuple([number,string])",
            "99,100",
            "FOO",
            Err("Unsuitable value type"),
        ),
        ("list(string)", "\"hello,world", "FOO", Err("from CSV")),
        (
            "object({message: string})",
            "does not matter",
            "FOO",
            Err("unsupported type"),
        ),
        ("list(list(number))", "1,2", "FOO", Err("unsupported type")),
        ("set(set(number))", "1,2", "FOO", Err("unsupported type")),
        ("tuple([list(number)])", "1", "FOO", Err("unsupported type")),
        (
            "map(list(number))",
            "foo:1,2",
            "FOO",
            Err("unsupported type"),
        ),
        ("map(string)", "a:b,foo:\"bar", "FOO", Err("as CSV")),
        (
            "list(number)",
            "1,1z",
            "FOO",
            Err("failed to parse element"),
        ),
        ("set(number)", "1,1z", "FOO", Err("failed to parse element")),
        (
            "tuple([number])",
            "1z",
            "FOO",
            Err("failed to parse element"),
        ),
        (
            "map(number)",
            "foo:1z",
            "FOO",
            Err("failed to parse element"),
        ),
        (
            "map(number)",
            "foo:1:1",
            "FOO",
            Err("expected one k/v pair"),
        ),
        ("number", "1z", "FOO", Err("failed to parse")),
    ];
    for (ty, value, arg_value, want) in cases {
        let dt = format!(
            "variable \"FOO\" {{\n type = {ty}\n}}\ntarget \"default\" {{\n args = {{\n foo = {arg_value}\n }}\n}}"
        );
        match want {
            Ok(v) => {
                let c = parse_env("docker-bake.hcl", &dt, &[("FOO", value)])
                    .unwrap_or_else(|e| panic!("{ty} {value}: {e}"));
                assert_eq!(arg(target(&c, "default"), "foo"), s(v), "{ty} {value}");
            }
            Err(fragment) => {
                let e = parse_err("docker-bake.hcl", &dt, &[("FOO", value)]);
                assert!(e.contains(fragment), "{ty} {value}: {e}");
            }
        }
    }
}

#[test]
fn typed_json_overrides() {
    let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
        ("bool", "true", "FOO", Ok("true")),
        ("number", "99", "FOO", Ok("99")),
        ("string", "hello", "FOO", Err("from JSON")),
        ("string", "\"hello\"", "FOO", Ok("hello")),
        (
            "list(string)",
            "[\"hi\",\"there\"]",
            "join(\"-\", FOO)",
            Ok("hi-there"),
        ),
        (
            "list(number)",
            "[3, 1, 4]",
            "join(\"-\", [for v in FOO: v + 1])",
            Ok("4-2-5"),
        ),
        (
            "map(number)",
            "{\"foo\": 1, \"bar\": 2}",
            "join(\"-\", sort(values(FOO)))",
            Ok("1-2"),
        ),
        (
            "map(number)",
            "{\"foo\": \"oops\", \"bar\": 2}",
            "FOO",
            Err("from JSON"),
        ),
        (
            "tuple([number,string])",
            "[99, \"bottles\"]",
            "format(\"%d %s\", FOO[0], FOO[1])",
            Ok("99 bottles"),
        ),
        (
            "tuple([number,string])",
            "[99, 100]",
            "FOO",
            Err("Unsuitable value type"),
        ),
        (
            "object({messages: list(string)})",
            "{\"messages\": [\"hi\", \"there\"]}",
            "join(\"-\", FOO[\"messages\"])",
            Ok("hi-there"),
        ),
    ];
    for (ty, value, arg_value, want) in cases {
        let dt = format!(
            "variable \"FOO\" {{\n type = {ty}\n}}\ntarget \"default\" {{\n args = {{\n foo = {arg_value}\n }}\n}}"
        );
        match want {
            Ok(v) => {
                let c = parse_env("docker-bake.hcl", &dt, &[("FOO_JSON", value)])
                    .unwrap_or_else(|e| panic!("{ty} {value}: {e}"));
                assert_eq!(arg(target(&c, "default"), "foo"), s(v), "{ty} {value}");
            }
            Err(fragment) => {
                let e = parse_err("docker-bake.hcl", &dt, &[("FOO_JSON", value)]);
                assert!(e.contains(fragment), "{ty} {value}: {e}");
            }
        }
    }
}

#[test]
fn json_override_priority() {
    let e = parse_err(
        "docker-bake.hcl",
        "variable \"FOO\" {\n type = list(number)\n}\nvariable \"FOO_JSON\" {\n type = list(number)\n}\ntarget \"default\" {\n args = {\n foo = FOO\n }\n}",
        &[("FOO", "[1,2]"), ("FOO_JSON", "[3,4]")],
    );
    assert!(
        e.contains("failed to convert") && e.contains("from CSV"),
        "{e}"
    );

    let length = "variable \"FOO\" {\n type = list(number)\n}\ntarget \"default\" {\n args = {\n foo = length(FOO)\n }\n}";
    let mut o = opts(&[("FOO", "1,2"), ("FOO_JSON", "[3,4,5]")]);
    o.extra_builtins
        .insert("FOO_JSON".to_string(), "whatever".to_string());
    let c = parse_files(&files(&[("docker-bake.hcl", length)]), &o).unwrap();
    assert_eq!(arg(target(&c, "default"), "foo"), s("2"));
    let c = parse_env(
        "docker-bake.hcl",
        length,
        &[("FOO", "1,2"), ("FOO_JSON", "[3,4,5]")],
    )
    .unwrap();
    assert_eq!(arg(target(&c, "default"), "foo"), s("3"));

    let e = parse_err(
        "docker-bake.hcl",
        "variable \"FOO\" {\n default = [1, 2]\n}\ntarget \"default\" {\n args = {\n foo = length(FOO)\n }\n}",
        &[("FOO_JSON", "[3,4]")],
    );
    assert!(e.contains("unsupported type"), "{e}");

    let own = "variable \"FOO_JSON\" {\n type = list(number)\n}\ntarget \"default\" {\n args = {\n foo = length(FOO_JSON)\n }\n}";
    let c = parse_env("docker-bake.hcl", own, &[("FOO_JSON", "10,11,12")]).unwrap();
    assert_eq!(arg(target(&c, "default"), "foo"), s("3"));
    let e = parse_err("docker-bake.hcl", own, &[("FOO_JSON", "[10,11,12]")]);
    assert!(e.contains("from CSV"), "{e}");
    let c = parse_env("docker-bake.hcl", own, &[("FOO_JSON_JSON", "[4,5,6]")]).unwrap();
    assert_eq!(arg(target(&c, "default"), "foo"), s("3"));

    let lower = "variable \"foo\" {\n type = number\n default = 101\n}\ntarget \"default\" {\n args = {\n bar = foo\n }\n}";
    let c = parse_env("docker-bake.hcl", lower, &[("foo_json", "9000")]).unwrap();
    assert_eq!(arg(target(&c, "default"), "bar"), s("101"));
    let c = parse_env("docker-bake.hcl", lower, &[("foo_JSON", "42")]).unwrap();
    assert_eq!(arg(target(&c, "default"), "bar"), s("42"));
}

#[test]
fn variable_validation() {
    let dt = r#"
variable "FOO" {
  validation {
    condition = FOO != ""
    error_message = "FOO is required."
  }
  validation {
    condition = strlen(FOO) > 4
    error_message = "FOO must be longer than 4 characters."
  }
}
target "app" {
  args = {
    FOO = FOO
  }
}
"#;
    parse_env("docker-bake.hcl", dt, &[("FOO", "barbar")]).unwrap();
    let e = parse_err("docker-bake.hcl", dt, &[("FOO", "bar")]);
    assert!(e.contains("FOO must be longer than 4 characters."), "{e}");
    let e = parse_err("docker-bake.hcl", dt, &[]);
    assert!(e.contains("FOO is required."), "{e}");
    assert_eq!(
        e,
        "docker-bake.hcl:4,17-26: Validation failed; FOO is required., and 1 other diagnostic(s)"
    );

    let deps = "variable \"FOO\" {}\nvariable \"BAR\" {\n validation {\n condition = FOO != \"\"\n error_message = \"BAR requires FOO to be set.\"\n }\n}\ntarget \"app\" {\n args = {\n BAR = BAR\n }\n}";
    parse_env("docker-bake.hcl", deps, &[("FOO", "bar")]).unwrap();
    let e = parse_err("docker-bake.hcl", deps, &[]);
    assert!(e.contains("BAR requires FOO to be set."), "{e}");

    let typed = "variable \"FOO\" {\n default = 0\n validation {\n condition = FOO > 5\n error_message = \"FOO must be greater than 5.\"\n }\n}\ntarget \"app\" {}";
    parse_env("docker-bake.hcl", typed, &[("FOO", "10")]).unwrap();
    let e = parse_err("docker-bake.hcl", typed, &[]);
    assert!(e.contains("FOO must be greater than 5."), "{e}");

    let e = parse_err(
        "docker-bake.hcl",
        "variable \"PORT\" {\n default = 3000\n validation {}\n}\ntarget \"app\" {}",
        &[],
    );
    assert!(
        e.contains("Condition expression must return either true or false, not null"),
        "{e}"
    );
    let e = parse_err(
        "docker-bake.hcl",
        "variable \"PORT\" {\n default = 3000\n validation {\n condition = \"foo\"\n }\n}\ntarget \"app\" {}",
        &[],
    );
    assert!(
        e.contains("Invalid condition result value: a bool is required"),
        "{e}"
    );
    let e = parse_err(
        "docker-bake.hcl",
        "variable \"FOO\" {\n default = 0\n validation {\n condition = FOO > 5\n }\n}\ntarget \"app\" {}",
        &[],
    );
    assert!(
        e.contains("This check failed, but has an invalid error message"),
        "{e}"
    );
}

#[test]
fn target_names_are_validated() {
    for (name, ok) in [
        ("a", true),
        ("abc", true),
        ("a/b", false),
        ("a.b", false),
        ("_a", true),
        ("a_b", true),
        ("AbC", true),
        ("AbC-0123", true),
    ] {
        let r = parse_env("docker-bake.hcl", &format!("target \"{name}\" {{}}"), &[]);
        assert_eq!(r.is_ok(), ok, "{name}: {r:?}");
    }
    let e = parse_err("docker-bake.hcl", "target \"a/b\" {}", &[]);
    assert_eq!(
        e,
        "docker-bake.hcl:1,8-13: Invalid name; only \"[a-zA-Z0-9_-]+\" are allowed"
    );
}

#[test]
fn unknown_extensions_try_hcl_then_json() {
    let c = parse_files(
        &files(&[
            ("c1.foo", "target \"app\" {\n context = \"dir\"\n}"),
            ("c2.bar", r#"{"target": {"app": {"dockerfile": "x"}}}"#),
        ]),
        &opts(&[]),
    )
    .unwrap();
    let t = targets(&c);
    assert_eq!(attr(t[0], "context"), &s("dir"));
    assert_eq!(attr(t[1], "dockerfile"), &s("x"));
    assert_eq!(t[0].position.as_ref().unwrap().file, "c1.foo.hcl");
    assert_eq!(t[1].position.as_ref().unwrap().file, "c2.bar.json");
}

#[test]
fn decoding_errors_match_buildx() {
    // Each checked against `docker buildx bake --print` 0.29.1 (Debian's build, whose older
    // go-cty omits the ", but have …" that go-cty 1.17, buildx 0.29.1's, adds).
    let e = parse_env(
        "c.hcl",
        "target \"t2\" {\n  foo = nope\n  dockerfile = [\"a\"]\n}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.hcl:3,16-17: Unsuitable value type; Unsuitable value: string required"
    );
    assert_eq!(
        e.snippet().unwrap(),
        "c.hcl:3\n--------------------\n   1 |     target \"t2\" {\n   2 |       foo = nope\n   3 | >>>   dockerfile = [\"a\"]\n   4 |     }\n   5 |     \n--------------------\n"
    );
    let e = parse_err(
        "e.hcl",
        "target \"t2\" {\n  args = { a = 1, b = true, c = null }\n  tags = \"x\"\n}\n",
        &[],
    );
    assert_eq!(
        e,
        "e.hcl:3,11-12: Unsuitable value type; Unsuitable value: list of string required"
    );
    let e = parse_err("g.hcl", "target \"t\" {\n  output = \"x\"\n}\n", &[]);
    assert_eq!(
        e,
        "g.hcl:2,13-14: Unsuitable value type; Unsuitable value: list of map of string required"
    );
    let e = parse_err(
        "d.hcl",
        "target \"t2\" {\n  foo { }\n  tags = \"x\"\n}\ngroup \"g\" {\n}\n",
        &[],
    );
    assert_eq!(
        e,
        "d.hcl:3,11-12: Unsuitable value type; Unsuitable value: list of string required, and 1 other diagnostic(s)"
    );
}

#[test]
fn unknown_names_are_worded_as_hcl_words_them() {
    let e = parse_err("x.hcl", "target \"t\" {\n  dockerfile = foo\n}\n", &[]);
    assert_eq!(
        e,
        "x.hcl:2,16-19: Unknown variable; There is no variable named \"foo\"., and 1 other diagnostic(s)"
    );
    let e = parse_err(
        "x.hcl",
        "target \"t\" {\n  dockerfile = nosuch(1)\n}\n",
        &[],
    );
    assert_eq!(
        e,
        "x.hcl:2,16-22: Call to unknown function; There is no function named \"nosuch\"., and 1 other diagnostic(s)"
    );
}

#[test]
fn expressions() {
    let c = parse_ok(
        "x.hcl",
        r#"
list = ["a", "b", "c"]
obj = { x = 1, y = 2 }
target "t" {
  args = {
    tmpl = "%{ for i, v in list }${i}=${v};%{ endfor }"
    cond = "%{ if length(list) > 2 }many%{ else }few%{ endif }"
    strip = "a  ${~ "b" ~}  c"
    heredoc = <<-EOT
      one
        two
      EOT
    splat = join(",", [for o in [{n = "p"}, {n = "q"}] : o][*].n)
    objfor = jsonencode({ for k, v in obj : k => v * 2 })
    group = jsonencode({ for v in ["a", "bb", "cc"] : strlen(v) => v... })
    filter = join(",", [for v in list : upper(v) if v != "b"])
    expand = format("%s-%s-%s", list...)
    math = 7 % 3 + 10 / 4 - -1
    logic = !false && (true || false)
    tryit = try(nosuch.x, "fallback")
    canit = can(nosuch2.x)
    conv = jsonencode(convert([1, 2], list(string)))
    idx = obj["x"]
    numkey = { "1" = "one" }[1]
  }
}
"#,
    );
    let t = target(&c, "t");
    assert_eq!(arg(t, "tmpl"), s("0=a;1=b;2=c;"));
    assert_eq!(arg(t, "cond"), s("many"));
    assert_eq!(arg(t, "strip"), s("abc"));
    assert_eq!(arg(t, "heredoc"), s("one\n  two\n"));
    assert_eq!(arg(t, "splat"), s("p,q"));
    assert_eq!(arg(t, "objfor"), s("{\"x\":2,\"y\":4}"));
    assert_eq!(arg(t, "group"), s("{\"1\":[\"a\"],\"2\":[\"bb\",\"cc\"]}"));
    assert_eq!(arg(t, "filter"), s("A,C"));
    assert_eq!(arg(t, "expand"), s("a-b-c"));
    assert_eq!(arg(t, "math"), s("4.5"));
    assert_eq!(arg(t, "logic"), s("true"));
    assert_eq!(arg(t, "tryit"), s("fallback"));
    assert_eq!(arg(t, "canit"), s("false"));
    assert_eq!(arg(t, "conv"), s("[\"1\",\"2\"]"));
    assert_eq!(arg(t, "idx"), s("1"));
    assert_eq!(arg(t, "numkey"), s("one"));
}

#[test]
fn variables_are_listed() {
    let c = parse_env(
        "x.hcl",
        "variable \"A\" {\n description = \"the a\"\n type = list(string)\n default = [\"x\"]\n}\nvariable \"B\" {\n default = 3\n}\nvariable \"C\" {}\ntarget \"t\" {}",
        &[("B", "4")],
    )
    .unwrap();
    let names: Vec<&str> = c.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(c.variables[0].description.as_deref(), Some("the a"));
    assert_eq!(c.variables[0].type_expr.as_deref(), Some("list of string"));
    assert_eq!(
        variable_value_text(&c.variables[0]).as_deref(),
        Some("[\"x\"]")
    );
    assert_eq!(c.variables[1].value, Value::Number(4.0));
    assert_eq!(c.variables[1].default, Some(Value::Number(3.0)));
    assert_eq!(variable_value_text(&c.variables[1]).as_deref(), Some("4"));
    assert_eq!(variable_value_text(&c.variables[2]).as_deref(), Some(""));
}

#[test]
fn call_errors_point_at_the_call() {
    let e = parse_err(
        "x.hcl",
        "target \"t\" {\n  args = {\n    a = length(\"abc\")\n  }\n}\n",
        &[],
    );
    assert_eq!(
        e,
        "x.hcl:3,9-16: Error in function call; Call to function \"length\" failed: collection must be a list, a map or a tuple., and 1 other diagnostic(s)"
    );
}

#[test]
fn repeated_targets_are_seen_merged_as_buildx_mutates_the_first() {
    // Checked against buildx 0.29.1: references see the first block with the later one
    // merged in, depending on the order dependencies are loaded (attribute names).
    let c = parse_ok(
        "q.hcl",
        "target \"a\" {\n dockerfile = \"x\"\n}\ntarget \"a\" {\n context = \"c\"\n}\ntarget \"b\" {\n dockerfile = target.a.dockerfile\n context = target.a.context\n}\ntarget \"d\" {\n args = { x = target.a.dockerfile, y = target.a.context }\n}",
    );
    let b = target(&c, "b");
    assert_eq!(attr(b, "dockerfile"), &Value::Null);
    assert_eq!(attr(b, "context"), &s("c"));
    // By now `b` left the second block published: `d` sees it alone.
    let d = target(&c, "d");
    assert_eq!(arg(d, "x"), Value::Null);
    assert_eq!(arg(d, "y"), s("c"));
    let c = parse_ok(
        "q.hcl",
        "target \"a\" {\n dockerfile = \"x\"\n}\ntarget \"a\" {\n context = \"c\"\n}\ntarget \"d\" {\n args = { x = target.a.dockerfile, y = target.a.context }\n}",
    );
    let d = target(&c, "d");
    assert_eq!(arg(d, "x"), s("x"));
    assert_eq!(arg(d, "y"), s("c"));
}

#[test]
fn strip_markers_in_directives() {
    let c = parse_ok(
        "k.hcl",
        r#"
target "t" {
  args = {
    s1 = "%{ for x in ["a","b"] ~} ${x} %{ endfor ~}|"
    s2 = "  %{~ if true ~}  yes  %{~ else ~} no %{~ endif ~}  |"
  }
}
"#,
    );
    let t = target(&c, "t");
    assert_eq!(arg(t, "s1"), s("a b |"));
    assert_eq!(arg(t, "s2"), s("yes|"));
}

#[test]
fn syntax_errors_are_worded_as_hcl_words_them() {
    let e = parse_err(
        "e13.hcl",
        "target \"t\" {\n  dockerfile = \"x\"\n  dockerfile = \"y\"\n}\n",
        &[],
    );
    assert_eq!(
        e,
        "e13.hcl:3,3-13: Attribute redefined; The argument \"dockerfile\" was already set at e13.hcl:2,3-13. Each argument may be set only once."
    );
    let e = parse_err("s1.hcl", "target \"t\" {\n  dockerfile = \"x\"\n", &[]);
    assert_eq!(
        e,
        "s1.hcl:1,12-13: Unclosed configuration block; There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file."
    );
    let e = parse_err("s4.hcl", "target \"t\" {\n  dockerfile = x +\n}\n", &[]);
    assert_eq!(
        e,
        "s4.hcl:2,19-3,1: Invalid expression; Expected the start of an expression, but found an invalid expression token."
    );
}
