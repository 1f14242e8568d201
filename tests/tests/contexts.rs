//! Docker contexts as builders (issue 12): every context of the docker CLI's store is a
//! `docker`-driver builder named after it, listed by `ls` as buildx lists it, usable as
//! `--builder NAME`, chosen by `DOCKER_CONTEXT`, and usable as the endpoint of `create`. The
//! second engine here is the current one (dockerd 28) on its own unix socket.

use std::path::{Path, PathBuf};
use std::process::Command;

use brix_e2e::{E2eEnv, Run, path, run, unique_name};

/// A docker CLI configuration of the test's own, with real buildx as its plugin and a
/// context `name` on `host`.
fn docker_config(env: &E2eEnv, name: &str, host: &str) -> PathBuf {
    let dir = env.scratch_dir("contexts-docker-config");
    let plugins = dir.join("cli-plugins");
    std::fs::create_dir_all(&plugins).expect("cli-plugins");
    let home = std::env::var("HOME").unwrap_or_default();
    let buildx = Path::new(&home).join(".docker/cli-plugins/docker-buildx");
    if buildx.exists() {
        std::os::unix::fs::symlink(&buildx, plugins.join("docker-buildx")).expect("link");
    }
    run(Command::new("docker")
        .env("DOCKER_CONFIG", &dir)
        .env_remove("DOCKER_HOST")
        .args(["context", "create", name, "--docker"])
        .arg(format!("host={host}")))
    .ok();
    dir
}

/// brix or docker (buildx) with that configuration, a store of its own and no DOCKER_HOST
/// (which would make `default` the current context).
fn with_config(mut c: Command, config: &Path, store: &Path, context: Option<&str>) -> Command {
    c.env("DOCKER_CONFIG", config)
        .env("BUILDX_CONFIG", store)
        .env("BRIX_CONFIG", store)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("BRIX_BUILDER")
        .env_remove("BUILDX_BUILDER");
    if let Some(ctx) = context {
        c.env("DOCKER_CONTEXT", ctx);
    }
    c
}

#[test]
fn a_context_on_a_second_engine_is_a_builder() {
    let Some(env) = E2eEnv::get() else { return };
    let second = env.engines()[1].clone();
    let name = unique_name("ctx");
    let config = docker_config(&env, &name, &second.host);
    let store = env.scratch_dir("contexts-store");
    let brix = |context: Option<&str>, args: &[&str]| -> Run {
        run(with_config(Command::new(&env.brix_bin), &config, &store, context).args(args))
    };
    let buildx = |context: Option<&str>, args: &[&str]| -> Run {
        let mut c = with_config(Command::new("docker"), &config, &store, context);
        run(c.arg("buildx").args(args))
    };

    // Listed as buildx lists it, the current one marked, with DOCKER_CONTEXT too.
    if std::env::var_os("BRIX_E2E_BUILDX").is_some() {
        for context in [None, Some(name.as_str())] {
            for args in [&["ls"][..], &["ls", "--format", "json"], &["inspect"]] {
                assert_eq!(
                    brix(context, args).ok().stdout,
                    buildx(context, args).ok().stdout,
                    "{args:?} with DOCKER_CONTEXT={context:?}"
                );
            }
        }
    }
    let ls = brix(Some(&name), &["ls"]).ok().stdout;
    assert!(
        ls.lines().any(|l| l.starts_with(&format!("{name}*"))),
        "{ls}"
    );

    // Built on by name and as the current context: the images land in the second engine.
    let ctx = env.scratch_dir("contexts-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {} > /m\n",
            env.busybox,
            unique_name("ctx-build")
        ),
    )
    .expect("Dockerfile");
    for (context, builder) in [(None, Some(name.as_str())), (Some(name.as_str()), None)] {
        let image = format!("{}:1", unique_name("ctx-image"));
        let mut args = vec!["build", "--progress", "plain", "--load", "-t", &image];
        if let Some(b) = builder {
            args.extend(["--builder", b]);
        }
        args.push(path(&ctx));
        let r = brix(context, &args).ok();
        assert!(
            r.stderr.contains(&format!(
                "building with \"{name}\" instance using docker driver"
            )),
            "{}",
            r.stderr
        );
        second.docker(["image", "inspect", &image]).ok();
        let on_first = run(Command::new("docker").args(["image", "inspect", &image]));
        assert!(!on_first.success, "{image} landed in the system engine too");
        let _ = second.docker(["rmi", "-f", &image]);
    }

    // A misspelt DOCKER_CONTEXT is an error, not a build on another engine.
    let r = brix(Some("no-such-context"), &["build", path(&ctx)]);
    assert!(!r.success);
    assert!(r.stderr.contains("no-such-context"), "{}", r.stderr);

    // The context as the endpoint of a docker-container builder: its container runs there.
    let builder = unique_name("on-ctx");
    brix(
        None,
        &[
            "create",
            "--name",
            &builder,
            "--driver-opt",
            "network=host",
            &name,
        ],
    )
    .ok();
    let inspect = brix(None, &["inspect", "--bootstrap", &builder])
        .ok()
        .stdout;
    assert!(
        inspect.contains(&format!("Endpoint:              {name}")),
        "{inspect}"
    );
    let containers = second.docker(["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert!(
        containers.contains(&format!("buildx_buildkit_{builder}0")),
        "{containers}"
    );
    brix(None, &["rm", &builder]).ok();
}
