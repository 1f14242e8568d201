//! `brix build --call` and `--check` (issue 14 item 6), side by side with real buildx on the
//! same builder: the Dockerfile frontend's answers to `check`, `outline` and `targets` (text
//! and `format=json`), their exit codes and metadata files, buildx's refusals of bad `--call`
//! values and the frontend's of an unknown method, and the warnings summary after a build.

use std::path::Path;
use std::process::Command;

use brix_e2e::{E2eEnv, SharedBuilder, unique_name};

/// The builder both tools build on ([`SharedBuilder`]), with the environment at hand.
struct Builder {
    env: E2eEnv,
    shared: SharedBuilder,
}

impl Builder {
    fn create(purpose: &str) -> Option<Self> {
        let env = E2eEnv::get()?;
        let shared = SharedBuilder::new(&env, purpose);
        Some(Builder { env, shared })
    }

    /// `build --builder B ARGS` with `tool`: its exit code, stdout and stderr.
    fn build(&self, tool: &str, args: &[&str]) -> Outcome {
        let mut c: Command = self.shared.build(tool);
        c.args(args);
        let out = c
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The same build with brix and with buildx.
    fn both(&self, args: &[&str]) -> (Outcome, Outcome) {
        (self.build("brix", args), self.build("buildx", args))
    }
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("ERROR:"))
            .unwrap_or_else(|| panic!("no ERROR line:\n{}", self.stderr))
    }
}

/// Asserts that brix answered as buildx did: same exit code, same stdout.
#[track_caller]
fn same_answer(what: &str, brix: &Outcome, buildx: &Outcome) {
    assert_eq!(
        brix.code, buildx.code,
        "{what}: exit codes\nbrix stderr:\n{}\nbuildx stderr:\n{}",
        brix.stderr, buildx.stderr
    );
    assert_eq!(
        brix.stdout, buildx.stdout,
        "{what}: stdout\nbrix stderr:\n{}",
        brix.stderr
    );
}

/// A check's JSON without the parts that name the session (each source's LLB definition
/// holds the session ID and digests over it).
fn without_definitions(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    if let Some(sources) = v.get_mut("sources").and_then(|s| s.as_array_mut()) {
        for s in sources {
            if let Some(o) = s.as_object_mut() {
                o.remove("definition");
            }
        }
    }
    v
}

fn dockerfile(dir: &Path, text: &str) -> String {
    std::fs::write(dir.join("Dockerfile"), text).expect("Dockerfile");
    dir.display().to_string()
}

#[test]
fn calls_answer_as_buildx_answers() {
    let Some(b) = Builder::create("call") else {
        return;
    };
    let bb = &b.env.busybox;
    let lint_dir = b.env.scratch_dir("call-lint");
    let lint = dockerfile(
        &lint_dir,
        &format!(
            "FROM {bb} as base\n\
             MAINTAINER someone@example.com\n\
             ARG VERSION=1.0\n\
             # FLAVOUR the flavour to build\n\
             ARG FLAVOUR\n\
             RUN --mount=type=secret,id=token,required=true true\n\
             RUN --mount=type=ssh true\n\
             \n\
             # final the image\n\
             FROM base AS final\n\
             COPY --from=base /bin/sh /sh\n"
        ),
    );
    let clean_dir = b.env.scratch_dir("call-clean");
    let clean = dockerfile(&clean_dir, &format!("FROM {bb} AS base\nRUN true\n"));

    // A check that finds something prints each warning with its lines and exits 1.
    let (brix, buildx) = b.both(&["--progress", "plain", "--call", "check", &lint]);
    same_answer("--call check", &brix, &buildx);
    assert_eq!(brix.code, Some(1));
    assert!(
        brix.stdout
            .starts_with("Check complete, 2 warnings have been found!\n\nWARNING: FromAsCasing - "),
        "{}",
        brix.stdout
    );
    assert!(
        brix.stdout.contains("WARNING: MaintainerDeprecated"),
        "{}",
        brix.stdout
    );
    // ignorestatus keeps the answer and exits 0.
    let (brix, buildx) = b.both(&[
        "--progress",
        "plain",
        "--call",
        "check,ignorestatus=true",
        &lint,
    ]);
    same_answer("--call check,ignorestatus=true", &brix, &buildx);
    assert_eq!(brix.code, Some(0));

    // --check on a clean Dockerfile; quiet mode starts with buildx's empty image-ID line.
    for progress in ["plain", "quiet"] {
        let (brix, buildx) = b.both(&["--progress", progress, "--check", &clean]);
        same_answer(&format!("--check ({progress})"), &brix, &buildx);
        assert_eq!(brix.code, Some(0));
        assert!(
            brix.stdout
                .ends_with("Check complete, no warnings found.\n"),
            "{}",
            brix.stdout
        );
    }

    // outline and targets: buildx's tables, and the frontend's JSON.
    for call in [
        "outline",
        "targets",
        "outline,format=json",
        "targets,format=json",
    ] {
        let (brix, buildx) = b.both(&["--progress", "plain", "--call", call, &lint]);
        same_answer(&format!("--call {call}"), &brix, &buildx);
        assert_eq!(brix.code, Some(0), "{call}: {}", brix.stderr);
    }
    let (brix, _) = b.both(&["--progress", "plain", "--call", "targets", &lint]);
    assert_eq!(
        brix.stdout,
        "TARGET          DESCRIPTION\nbase            \nfinal (default) the image\n"
    );

    // check's JSON, equal but for the session the sources were read over.
    let (brix, buildx) = b.both(&["--progress", "plain", "--call", "check,format=json", &lint]);
    assert_eq!(brix.code, buildx.code, "{}", brix.stderr);
    assert_eq!(brix.code, Some(1));
    assert_eq!(
        without_definitions(&brix.stdout),
        without_definitions(&buildx.stdout)
    );

    // The metadata file holds the answer as buildx decodes it.
    let files = b.env.scratch_dir("call-metadata");
    let (brix_md, buildx_md) = (files.join("brix.json"), files.join("buildx.json"));
    for (tool, path) in [("brix", &brix_md), ("buildx", &buildx_md)] {
        let r = b.build(
            tool,
            &[
                "--progress",
                "plain",
                "--call",
                "targets",
                "--metadata-file",
                &path.display().to_string(),
                &lint,
            ],
        );
        assert_eq!(r.code, Some(0), "{tool}: {}", r.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(&brix_md).expect("brix's metadata"),
        std::fs::read_to_string(&buildx_md).expect("buildx's metadata")
    );

    // A Dockerfile that does not parse: the check's error with its lines, exit 1.
    let broken_dir = b.env.scratch_dir("call-broken");
    let broken = dockerfile(&broken_dir, &format!("FROM {bb}\nFOO bar\n"));
    let (brix, buildx) = b.both(&["--progress", "quiet", "--call", "check", &broken]);
    same_answer("--call check (parse error)", &brix, &buildx);
    let tail = |o: &Outcome| o.stderr[o.stderr.find("ERROR:").unwrap_or(0)..].to_owned();
    assert_eq!(tail(&brix), tail(&buildx));
    assert!(tail(&brix).contains(">>> FOO bar"), "{}", brix.stderr);

    // A method the frontend does not know: its refusal, in buildx's words.
    let (brix, buildx) = b.both(&["--progress", "plain", "--call", "nosuchmethod", &clean]);
    assert_eq!(brix.code, buildx.code);
    assert_eq!(brix.error_line(), buildx.error_line());
    assert_eq!(
        brix.error_line(),
        "ERROR: failed to build: failed to solve: unsupported request frontend.nosuchmethod: unsupported request frontend.nosuchmethod"
    );

    // Values buildx refuses before it asks a daemon.
    for bad in ["check,foo=bar", "check,outline", "check,ignorestatus=maybe"] {
        let (brix, buildx) = b.both(&["--call", bad, &clean]);
        assert_eq!(brix.code, Some(1), "{bad}");
        assert_eq!(brix.error_line(), buildx.error_line(), "{bad}");
    }
}

#[test]
fn the_warnings_after_a_build_read_as_buildx_s() {
    let Some(b) = Builder::create("callwarn") else {
        return;
    };
    let dir = b.env.scratch_dir("callwarn-ctx");
    let ctx = dockerfile(
        &dir,
        &format!(
            "FROM {} as base\nMAINTAINER someone@example.com\nRUN echo {}\n",
            b.env.busybox,
            unique_name("callwarn")
        ),
    );
    let summary = |o: &Outcome| -> String {
        let at = o
            .stderr
            .find("warnings found")
            .unwrap_or_else(|| panic!("no warnings summary:\n{}", o.stderr));
        // From the blank line before the (coloured) heading to the end.
        let start = o.stderr[..at].rfind("\n\n").unwrap_or(0);
        o.stderr[start..].to_owned()
    };
    let (brix, buildx) = b.both(&["--progress", "plain", "-o", "type=cacheonly", &ctx]);
    assert_eq!(brix.code, Some(0), "{}", brix.stderr);
    assert_eq!(buildx.code, Some(0), "{}", buildx.stderr);
    // buildx lists the warnings in Go's random map order (its dedupWarnings goes through a
    // map): the same heading, the same warning lines in some order.
    let lines = |o: &Outcome| -> (Vec<String>, Vec<String>) {
        let (mut heading, mut warnings) = (Vec::new(), Vec::new());
        for line in summary(o).lines() {
            // The first warning line begins with the heading colour's reset.
            let (reset, rest) = match line.strip_prefix("\u{1b}[0m") {
                Some(rest) => ("\u{1b}[0m", rest),
                None => ("", line),
            };
            match rest.strip_prefix(" - ") {
                Some(warning) => {
                    heading.push(reset.to_owned());
                    warnings.push(warning.to_owned());
                }
                None => heading.push(line.to_owned()),
            }
        }
        warnings.sort();
        (heading, warnings)
    };
    assert_eq!(lines(&brix), lines(&buildx));
    assert!(
        summary(&brix).contains("2 warnings found (use docker --debug to expand):\n"),
        "{}",
        summary(&brix)
    );
}
