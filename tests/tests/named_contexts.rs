//! `--build-context` (issue 14 item 2), side by side with real buildx on one builder: a local
//! folder (with its own `.dockerignore`), a `docker-image://` reference and an
//! `oci-layout://` folder (served from the session content store), used as the Dockerfile
//! uses them (`FROM NAME`, `COPY --from=NAME`).

use std::path::{Path, PathBuf};

use brix_e2e::{
    E2eEnv, Run, path, relative_paths, remove_node_container, run, skopeo, unique_name,
};

#[test]
fn named_contexts_reach_the_dockerfile_as_with_buildx() {
    let Some(env) = E2eEnv::get() else { return };
    if std::env::var_os("BRIX_E2E_BUILDX").is_none() {
        panic!("this side-by-side test needs real buildx (`cargo xtask e2e` installs it)");
    }
    let store = env.scratch_dir("named-store");
    let name = unique_name("named");
    env.create_builder(&store, &name, "");
    run(env.brix_in(&store).args(["inspect", "--bootstrap", &name])).ok();
    struct Cleanup<'a>(&'a E2eEnv, &'a Path, &'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = run(self.0.brix_in(self.1).args(["rm", "--force", self.2]));
            remove_node_container(&format!("buildx_buildkit_{}0", self.2));
        }
    }
    let _cleanup = Cleanup(&env, &store, &name);

    let files = env.scratch_dir("named-files");
    std::fs::write(files.join("a.txt"), "a\n").expect("a.txt");
    std::fs::write(files.join("secret.txt"), "not for the build\n").expect("secret.txt");
    std::fs::write(files.join(".dockerignore"), "secret.txt\n").expect(".dockerignore");
    let layout = env.scratch_dir("named-oci");
    skopeo([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", env.busybox),
        &format!("oci:{}:v1", path(&layout)),
    ])
    .ok();

    let ctx = env.scratch_dir("named-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM base\n\
             COPY --from=files / /files\n\
             COPY --from=img /bin/busybox /img-busybox\n\
             RUN echo {} > /marker\n",
            unique_name("named")
        ),
    )
    .expect("Dockerfile");
    let contexts = [
        format!("files={}", path(&files)),
        format!("img=docker-image://{}", env.busybox),
        format!("base=oci-layout://{}:v1", path(&layout)),
    ];
    let mut listings = Vec::new();
    for tool in ["brix", "buildx"] {
        let out: PathBuf = env.scratch_dir(&format!("named-{tool}-out"));
        let dest = format!("type=local,dest={}", out.display());
        let mut c = env.tool_in(tool, &store);
        c.args([
            "build",
            "--builder",
            &name,
            "--progress",
            "plain",
            "-o",
            &dest,
        ]);
        for context in &contexts {
            c.args(["--build-context", context]);
        }
        let r: Run = run(c.arg(&ctx));
        assert!(r.success, "{tool}: {}", r.stderr);
        assert!(
            out.join("files/a.txt").is_file(),
            "{tool}: the local context"
        );
        assert!(
            !out.join("files/secret.txt").exists(),
            "{tool}: the context's own .dockerignore"
        );
        assert!(
            out.join("img-busybox").is_file(),
            "{tool}: the docker-image context"
        );
        assert!(
            out.join("bin/busybox").is_file(),
            "{tool}: FROM the oci-layout context"
        );
        listings.push(relative_paths(&out));
    }
    assert_eq!(
        listings[0], listings[1],
        "the same files land with both tools"
    );

    // An oci-layout that cannot be resolved is refused before any solve, with buildx's words.
    let empty = env.scratch_dir("named-empty-oci");
    let bad = format!("x=oci-layout://{}", path(&empty));
    let r = run(env
        .brix_in(&store)
        .args(["build", "--builder", &name, "--build-context", &bad])
        .arg(&ctx));
    assert!(!r.success);
    assert!(
        r.stderr.contains("could not be resolved: could not read"),
        "{}",
        r.stderr
    );
}
