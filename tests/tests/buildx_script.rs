//! A shell script written for buildx runs unchanged with `buildx` being brix (issue 12):
//! `create` with BUILDX_CONFIG set and no `--name` (its output is the generated name),
//! `BUILDX_BUILDER=… build`, `inspect`, `ls --format '{{.Name}}'`, `du --format '{{.ID}}'`,
//! `rm`. The same script with real buildx on the same engine prints the same (the generated
//! name replaced by NAME, the record IDs by their count).

use std::path::Path;
use std::process::Command;

use brix_e2e::{E2eEnv, path, run};

const SCRIPT: &str = r#"set -eu
name=$(buildx create --driver-opt network=host --buildkitd-config "$CONFIG")
echo "$name" | grep -Eq '^[a-z]+_[a-z]+[0-9]*$' && echo "create: adjective_name"
BUILDX_BUILDER=$name buildx build --progress quiet -o type=cacheonly "$CTX" > /dev/null
echo "build: ok"
buildx inspect "$name" | grep -E '^(Name|Driver):' | sed "s/$name/NAME/"
buildx ls --format '{{.Name}}' | sed "s/^$name/NAME/" | LC_ALL=C sort
ids=$(BUILDX_BUILDER=$name buildx du --format '{{.ID}}' | grep -c . || true)
[ "$ids" -gt 0 ] && echo "du: some records"
buildx rm "$name"
"#;

/// Runs SCRIPT with `buildx` on PATH being `tool` (a link or a wrapper script in `bin`).
fn run_script(
    env: &E2eEnv,
    bin: &Path,
    store: &Path,
    ctx: &Path,
    config: &Path,
) -> (String, String) {
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let r = run(Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .env("PATH", path_var)
        .env("BUILDX_CONFIG", store)
        .env_remove("BRIX_CONFIG")
        .env_remove("BUILDX_BUILDER")
        .env("DOCKER_HOST", &env.docker_host)
        .env("CTX", ctx)
        .env("CONFIG", config))
    .ok();
    (r.stdout, r.stderr)
}

#[test]
fn a_buildx_script_runs_unchanged_on_brix() {
    let Some(env) = E2eEnv::get() else { return };
    let ctx = env.scratch_dir("script-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo script > /s\n", env.busybox),
    )
    .expect("Dockerfile");
    let config = ctx.join("buildkitd.toml");
    std::fs::write(&config, "[registry.\"localhost:5000\"]\n  http = true\n").expect("toml");

    // `buildx` is brix.
    let brix_bin = env.scratch_dir("script-brix-bin");
    std::os::unix::fs::symlink(&env.brix_bin, brix_bin.join("buildx")).expect("link");
    let brix_store = env.scratch_dir("script-brix-store");
    let (ours, stderr) = run_script(&env, &brix_bin, &brix_store, &ctx, &config);
    assert_eq!(
        ours,
        "create: adjective_name\nbuild: ok\nName:          NAME\nDriver:        docker-container\nName:                  NAME0\nNAME\nNAME0\ndefault\ndefault\ndu: some records\n",
        "{stderr}"
    );

    // Real buildx, through a wrapper that also boots what `create` made with brix (buildx asks
    // for a privileged container, which these machines refuse; brix's fallback boots it and
    // buildx then uses the same container, the store being shared).
    if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        let buildx_bin = env.scratch_dir("script-buildx-bin");
        let wrapper = buildx_bin.join("buildx");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nif [ \"$1\" = create ]; then\n  n=$(docker buildx \"$@\") || exit $?\n  \
                 {brix} inspect --bootstrap \"$n\" > /dev/null || exit $?\n  echo \"$n\"\n  exit 0\nfi\n\
                 exec docker buildx \"$@\"\n",
                brix = path(&env.brix_bin)
            ),
        )
        .expect("wrapper");
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let buildx_store = env.scratch_dir("script-buildx-store");
        let (theirs, stderr) = run_script(&env, &buildx_bin, &buildx_store, &ctx, &config);
        assert_eq!(
            ours, theirs,
            "brix and buildx printed different things:\n{stderr}"
        );
    }
}
