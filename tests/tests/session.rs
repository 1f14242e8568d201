//! The client side of a BuildKit session against a real daemon in a container: a hand-built
//! LLB graph solved for linux/amd64 and linux/arm64 (QEMU) with its `local` output received
//! through the session's FileSend, and a `dockerfile.v0` solve whose context is synced
//! through the session's FileSync sender.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use brix_e2e::{
    BUILDKIT_CAPABILITY_FLAGS, ContainerGuard, E2eEnv, TEST_LABEL, docker, unique_name, wait_for,
};
use brix_solver_client::ControlClient;
use brix_solver_client::llb::{self, FileActions, Platform};
use brix_solver_client::proto::moby::buildkit::v1::{Exporter, SolveRequest};
use brix_solver_client::session::{OutputTarget, Session, SyncedDir};

/// A BuildKit daemon on the host network (to reach the registry on localhost:5000, which it
/// is told to use over plain HTTP), its socket in a host folder.
fn start_daemon(env: &E2eEnv) -> (ContainerGuard, PathBuf) {
    let dir = env.scratch_dir("session-daemon");
    let sock_dir = dir.join("run");
    std::fs::create_dir_all(&sock_dir).expect("socket dir");
    let config = dir.join("buildkitd.toml");
    std::fs::write(
        &config,
        format!(
            "[registry.\"{}\"]\n  http = true\n  insecure = true\n",
            env.registry
        ),
    )
    .expect("buildkitd.toml");

    let name = unique_name("session-bk");
    let label = format!("{TEST_LABEL}=1");
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        "--network",
        "host",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(BUILDKIT_CAPABILITY_FLAGS.iter().map(|s| s.to_string()));
    args.extend([
        "-v".into(),
        format!("{}:/run/buildkit", sock_dir.display()),
        "-v".into(),
        format!("{}:/etc/buildkit/buildkitd.toml:ro", config.display()),
        env.buildkit_image.clone(),
    ]);
    docker(&args).ok();
    let guard = ContainerGuard { name };
    let sock = sock_dir.join("buildkitd.sock");
    wait_for("buildkitd socket", Duration::from_secs(60), || {
        if sock.exists() {
            Ok(())
        } else {
            Err(format!("{} missing", sock.display()))
        }
    });
    (guard, sock)
}

async fn connect(sock: &Path) -> ControlClient {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match ControlClient::connect_unix(sock).await {
            Ok(client) if client.list_workers().await.is_ok() => return client,
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Ok(_) => panic!("buildkitd at {} never listed its workers", sock.display()),
            Err(e) => panic!("cannot connect to {}: {e}", sock.display()),
        }
    }
}

/// Runs one solve with the session open around it, draining the status stream meanwhile,
/// and closes the session after the solve (exporters call back into it during the solve).
async fn solve(
    client: &ControlClient,
    session: Session,
    mut request: SolveRequest,
) -> Result<(), String> {
    let running = session
        .run_over_control(&mut client.raw())
        .await
        .map_err(|e| format!("session: {e}"))?;
    request.r#ref = unique_name("ref");
    request.session = running.id().to_owned();
    let status = {
        let client = client.clone();
        let build_ref = request.r#ref.clone();
        tokio::spawn(async move {
            let mut lines = Vec::new();
            if let Ok(mut stream) = client.status(&build_ref).await {
                while let Ok(Some(msg)) = stream.message().await {
                    for v in msg.vertexes {
                        if !v.error.is_empty() {
                            lines.push(format!("{}: {}", v.name, v.error));
                        }
                    }
                    for log in msg.logs {
                        lines.push(String::from_utf8_lossy(&log.msg).into_owned());
                    }
                }
            }
            lines
        })
    };
    let result = client.solve(request).await;
    let closed = running.close().await;
    let logs = status.await.unwrap_or_default();
    result.map_err(|e| format!("solve: {e}\nlogs:\n{}", logs.join("")))?;
    closed.map_err(|e| format!("closing session: {e}"))
}

fn local_exporter() -> Vec<Exporter> {
    vec![Exporter {
        r#type: "local".into(),
        attrs: BTreeMap::new(),
    }]
}

#[test]
fn llb_solve_per_platform_exports_through_the_session() {
    let Some(env) = E2eEnv::get() else { return };
    let (_daemon, sock) = start_daemon(&env);
    let out = env.scratch_dir("session-llb-out");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = connect(&sock).await;
        let solves =
            [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")].map(|(platform, _)| {
                let client = client.clone();
                let busybox = env.busybox.clone();
                let dest = out.join(platform.replace('/', "-"));
                async move {
                    let p = Platform::parse(platform).expect("platform");
                    let built = llb::image(&busybox)
                        .platform(p.clone())
                        .into_state()
                        .run(["/bin/sh", "-c", "uname -m > /arch"])
                        .custom_name(format!("uname on {platform}"))
                        .root();
                    let result =
                        llb::scratch().file(FileActions::new().copy(&built, "/arch", "/arch"));
                    let definition = result.marshal(&p).expect("marshal");
                    let mut session = Session::new("");
                    session.add_output(0, OutputTarget::Directory(dest.clone()));
                    let request = SolveRequest {
                        definition: Some(definition),
                        exporters: local_exporter(),
                        exporter_deprecated: "local".into(),
                        ..Default::default()
                    };
                    solve(&client, session, request).await.map(|()| dest)
                }
            });
        let [amd64, arm64] = solves;
        let (amd64, arm64) = tokio::join!(amd64, arm64);
        let amd64 = amd64.unwrap_or_else(|e| panic!("linux/amd64: {e}"));
        let arm64 = arm64.unwrap_or_else(|e| panic!("linux/arm64: {e}"));
        assert_eq!(
            std::fs::read_to_string(amd64.join("arch"))
                .expect("amd64 /arch")
                .trim(),
            "x86_64"
        );
        assert_eq!(
            std::fs::read_to_string(arm64.join("arch"))
                .expect("arm64 /arch")
                .trim(),
            "aarch64"
        );
    });
}

#[test]
fn dockerfile_solve_syncs_the_context_through_the_session() {
    let Some(env) = E2eEnv::get() else { return };
    let (_daemon, sock) = start_daemon(&env);
    let context = env.scratch_dir("session-context");
    let out = env.scratch_dir("session-df-out");

    std::fs::write(context.join("Dockerfile"), "FROM scratch\nCOPY . /src\n").expect("Dockerfile");
    std::fs::write(
        context.join(".dockerignore"),
        "# keep secrets out\nsecret.txt\n*.log\n!keep.log\n",
    )
    .expect(".dockerignore");
    std::fs::write(context.join("secret.txt"), "do not send").expect("secret");
    std::fs::write(context.join("debug.log"), "noise").expect("log");
    std::fs::write(context.join("keep.log"), "kept").expect("log");
    std::fs::write(context.join("a.txt"), "hello from the context\n").expect("a.txt");
    std::fs::set_permissions(
        context.join("a.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    std::fs::create_dir_all(context.join("bin/deep/er")).expect("mkdir");
    std::fs::write(context.join("bin/run.sh"), "#!/bin/sh\necho run\n").expect("run.sh");
    std::fs::set_permissions(
        context.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(context.join("bin/deep/er/big.bin"), vec![0x5au8; 3 << 20]).expect("big");
    std::os::unix::fs::symlink("a.txt", context.join("link")).expect("symlink");
    std::fs::create_dir(context.join("empty")).expect("empty dir");
    let mtime = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(context.join("a.txt"))
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = connect(&sock).await;
        let mut session = Session::new("context:session-e2e");
        session.add_local("context", SyncedDir::new(&context));
        session.add_local("dockerfile", SyncedDir::new(&context));
        session.add_output(0, OutputTarget::Directory(out.clone()));
        let request = SolveRequest {
            frontend: "dockerfile.v0".into(),
            frontend_attrs: BTreeMap::from([("platform".to_owned(), "linux/amd64".to_owned())]),
            exporters: local_exporter(),
            exporter_deprecated: "local".into(),
            ..Default::default()
        };
        solve(&client, session, request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });

    let src = out.join("src");
    assert_eq!(
        std::fs::read_to_string(src.join("a.txt")).expect("a.txt"),
        "hello from the context\n"
    );
    let meta = std::fs::metadata(src.join("a.txt")).expect("a.txt meta");
    assert_eq!(meta.mode() & 0o777, 0o640, "mode of a.txt");
    assert_eq!(
        meta.modified().expect("mtime"),
        mtime,
        "mtime of a.txt survives sync, COPY and export"
    );
    assert_eq!(
        std::fs::metadata(src.join("bin/run.sh"))
            .expect("run.sh")
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(src.join("bin/deep/er/big.bin"))
            .expect("big.bin")
            .len(),
        3 << 20
    );
    assert_eq!(
        std::fs::read_link(src.join("link")).expect("symlink kept"),
        Path::new("a.txt")
    );
    assert!(src.join("empty").is_dir(), "empty directory synced");
    assert!(
        !src.join("secret.txt").exists(),
        ".dockerignore excludes secret.txt"
    );
    assert!(
        !src.join("debug.log").exists(),
        ".dockerignore excludes *.log"
    );
    assert_eq!(
        std::fs::read_to_string(src.join("keep.log")).expect("keep.log"),
        "kept",
        "! exception re-includes keep.log"
    );
}

/// Unix file names are bytes. The session sends them as the raw bytes Go would (the proto
/// field is a `string`), the daemon accepts them, and the local output receives them back.
#[test]
fn non_utf8_file_names_survive_sync_copy_and_export() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let Some(env) = E2eEnv::get() else { return };
    let (_daemon, sock) = start_daemon(&env);
    let context = env.scratch_dir("session-nonutf8");
    let out = env.scratch_dir("session-nonutf8-out");
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nCOPY . /src\n").expect("Dockerfile");
    std::fs::write(context.join(name), "latin-1 name").expect("non-UTF-8 file");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = connect(&sock).await;
        let mut session = Session::new("");
        session.add_local("context", SyncedDir::new(&context));
        session.add_local("dockerfile", SyncedDir::new(&context));
        session.add_output(0, OutputTarget::Directory(out.clone()));
        let request = SolveRequest {
            frontend: "dockerfile.v0".into(),
            exporters: local_exporter(),
            exporter_deprecated: "local".into(),
            ..Default::default()
        };
        solve(&client, session, request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    assert_eq!(
        std::fs::read_to_string(out.join("src").join(name)).expect("non-UTF-8 name in the output"),
        "latin-1 name"
    );
}
