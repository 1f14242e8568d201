//! The Docker token flow end to end (issue 17): a distribution registry with `auth: token`
//! behind distribution's own token server, reached with credentials from `config.json`. Every
//! push path goes through it: the daemon's per-platform pushes (the session's Auth service),
//! brix's own index push, `imagetools create`/`inspect`, a registry cache export and import,
//! and the docker driver on both engines; real buildx on the same builder does the same steps
//! (the token server is built with the OAuth2 password grant BuildKit asks for, see
//! `xtask/src/e2e/token_registry.rs`). A push that outlives its token gets new ones from a
//! token server whose tokens last seconds.

use std::process::Command;
use std::time::Duration;

use brix_e2e::{E2eEnv, SharedBuilder, image_platforms, path, run, skopeo};

/// The manifest or index `image` points at, fetched with the registry's credentials.
fn raw_manifest(env: &E2eEnv, image: &str) -> serde_json::Value {
    let token = env.token_registry();
    let out = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &token.skopeo_creds(),
        &format!("docker://{image}"),
    ])
    .ok();
    serde_json::from_str(&out.stdout).expect("a JSON manifest")
}

#[test]
fn every_push_path_goes_through_token_auth() {
    let Some(env) = E2eEnv::get() else { return };
    let token = env.token_registry().clone();
    let b = SharedBuilder::new(&env, "token-auth");
    let scratch = env.scratch_dir("token-auth");
    let config = token.docker_config(&scratch);
    let ctx = env.scratch_dir("token-auth-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo token > /t\n", env.busybox),
    )
    .expect("Dockerfile");
    push_pull_everywhere(&env, &b, &ctx, &config, &[], "auths");

    // Without credentials the push is refused, in one line.
    let empty = scratch.join("no-credentials");
    std::fs::create_dir_all(&empty).expect("empty docker config");
    let image = token.image_ref("token-anonymous", "1");
    let r = run(b
        .build("brix")
        .env("DOCKER_CONFIG", &empty)
        .args(["--progress", "plain", "-t", &image, "--push"])
        .arg(path(&ctx)));
    let line = r.error_line();
    assert!(
        line.contains("401") || line.to_lowercase().contains("unauthorized"),
        "{}",
        r.stderr
    );
}

/// Every step of the done-when on the container builder `b`, by brix and by real buildx,
/// with the credentials `config` (a `DOCKER_CONFIG` folder) and `extra_env` (a credential
/// helper's) give: a two-platform push, `imagetools create`/`inspect` of it, a registry
/// cache exported and imported. `label` keeps each caller's repositories apart.
fn push_pull_everywhere(
    env: &E2eEnv,
    b: &SharedBuilder,
    ctx: &std::path::Path,
    config: &std::path::Path,
    extra_env: &[(String, std::path::PathBuf)],
    label: &str,
) {
    let token = env.token_registry();
    let with_credentials = |c: &mut Command| {
        c.env("DOCKER_CONFIG", config);
        for (k, v) in extra_env {
            c.env(k, v);
        }
    };
    // A two-platform push: the daemon pushes each platform (asking the tool's session for
    // tokens: BuildKit's auth provider asks for an OAuth2 password grant first, which the
    // token server takes), brix pushes the index last; real buildx on the same builder does
    // the same.
    let mut indexes = Vec::new();
    for tool in ["brix", "buildx"] {
        let image = token.image_ref(&format!("token-{label}-{tool}-push"), "1");
        let mut build = b.build(tool);
        with_credentials(&mut build);
        let r = run(build
            .args([
                "--progress",
                "plain",
                "--platform",
                "linux/amd64,linux/arm64",
            ])
            .args(["-t", &image, "--push"])
            .arg(path(ctx)));
        assert!(
            r.success,
            "{label}: {tool} push through token auth:\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains(&token.password),
            "{label}: {tool} printed the password"
        );
        let index = raw_manifest(env, &image);
        assert_eq!(
            image_platforms(&index),
            ["linux/amd64", "linux/arm64"],
            "{label}: {tool}: {index}"
        );
        indexes.push((image, index));
    }
    let (image, index) = indexes.swap_remove(0);

    for tool in ["brix", "buildx"] {
        // The image combined under a new tag, and inspected, through the token flow.
        let merged = token.image_ref(&format!("token-{label}-{tool}-merged"), "1");
        let mut create = env.tool_in(tool, &b.store);
        with_credentials(&mut create);
        let r = run(create.args(["imagetools", "create", "-t", &merged, &image]));
        assert!(
            r.success,
            "{label}: {tool} imagetools create:\n{}",
            r.stderr
        );
        assert_eq!(
            raw_manifest(env, &merged),
            index,
            "{label}: {tool} imagetools create"
        );
        let mut inspect = env.tool_in(tool, &b.store);
        with_credentials(&mut inspect);
        let r = run(inspect.args(["imagetools", "inspect", "--raw", &merged]));
        assert!(
            r.success,
            "{label}: {tool} imagetools inspect:\n{}",
            r.stderr
        );
        let listed: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
        assert_eq!(listed, index, "{label}: {tool} imagetools inspect");
    }

    // A registry cache exported for both platforms, then imported by a fresh build, by each
    // tool into a cache of its own.
    for tool in ["brix", "buildx"] {
        let cache = token.image_ref(&format!("token-{label}-{tool}-cache"), "cache");
        let mut export = b.build(tool);
        with_credentials(&mut export);
        let r = run(export
            .args([
                "--progress",
                "plain",
                "--platform",
                "linux/amd64,linux/arm64",
            ])
            .args(["-o", "type=cacheonly"])
            .arg(format!("--cache-to=type=registry,ref={cache},mode=max"))
            .arg(path(ctx)));
        assert!(
            r.success,
            "{label}: {tool}: cache export through token auth:\n{}",
            r.stderr
        );
        let mut import = b.build(tool);
        with_credentials(&mut import);
        let r = run(import
            .args([
                "--progress",
                "plain",
                "--no-cache",
                "--platform",
                "linux/amd64",
            ])
            .args(["-o", "type=cacheonly"])
            .arg(format!("--cache-from=type=registry,ref={cache}"))
            .arg(path(ctx)));
        assert!(
            r.success,
            "{label}: {tool}: cache import through token auth:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("importing cache manifest from"),
            "{label}: {tool}: no cache imported:\n{}",
            r.stderr
        );
    }
}

#[test]
fn the_docker_driver_pushes_through_token_auth_on_both_engines() {
    let Some(env) = E2eEnv::get() else { return };
    let token = env.token_registry().clone();
    let scratch = env.scratch_dir("token-docker");
    let config = token.docker_config(&scratch);
    let ctx = env.scratch_dir("token-docker-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo docker-driver > /t\n", env.busybox),
    )
    .expect("Dockerfile");
    docker_driver_push(&env, &ctx, &config, &[], "auths");
}

/// A two-platform `build --push` on the docker driver of each e2e engine (the engine pushes
/// the image brix hands it, with the credentials brix resolves), with the credentials
/// `config` and `extra_env` give.
fn docker_driver_push(
    env: &E2eEnv,
    ctx: &std::path::Path,
    config: &std::path::Path,
    extra_env: &[(String, std::path::PathBuf)],
    label: &str,
) {
    let token = env.token_registry();
    for engine in env.engines() {
        let store = env.scratch_dir("token-docker-store");
        let image = token.image_ref(&format!("token-{label}-{}", engine.name), "1");
        let mut build = Command::new(&env.brix_bin);
        for (k, v) in extra_env {
            build.env(k, v);
        }
        let r = run(build
            .env("BRIX_CONFIG", &store)
            .env("DOCKER_HOST", &engine.host)
            .env("DOCKER_CONFIG", config)
            .env_remove("BRIX_BUILDER")
            .env_remove("BUILDX_BUILDER")
            .args(["build", "--builder", "default", "--progress", "plain"])
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                &image,
                "--push",
            ])
            .arg(path(ctx)));
        assert!(
            r.success,
            "{label}: {}: docker driver push:\n{}",
            engine.name, r.stderr
        );
        let index = raw_manifest(env, &image);
        assert_eq!(
            image_platforms(&index),
            ["linux/amd64", "linux/arm64"],
            "{label}: {}: {index}",
            engine.name
        );
    }
}

/// Every place a secret could leak to: the password, its base64 form (the `auth` field and
/// a Basic header), a token (a JWT starts `eyJ`) or an `Authorization` header.
fn leaks(text: &str, password: &str, basic: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    if text.contains(password) {
        found.push("the password");
    }
    if text.contains(basic) {
        found.push("the base64 credentials");
    }
    if text.contains("eyJ") {
        found.push("a token (eyJ…)");
    }
    if text.to_ascii_lowercase().contains("authorization:")
        || text.to_ascii_lowercase().contains("\"authorization\"")
    {
        found.push("an Authorization header");
    }
    found
}

#[test]
fn no_secret_reaches_any_output_or_file() {
    use base64::Engine as _;
    let Some(env) = E2eEnv::get() else { return };
    let token = env.token_registry().clone();
    let b = SharedBuilder::new(&env, "token-leaks");
    let scratch = env.scratch_dir("token-leaks");
    let config = token.docker_config(&scratch);
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", token.user, token.password));
    let ctx = env.scratch_dir("token-leaks-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo leaks > /l\n", env.busybox),
    )
    .expect("Dockerfile");
    let out = env.scratch_dir("token-leaks-out");
    let mut problems = Vec::new();
    for (label, extra) in [
        ("RUST_LOG=trace", &["--progress", "plain"][..]),
        ("--debug", &["--progress", "plain"][..]),
        ("--progress rawjson", &["--progress", "rawjson"][..]),
    ] {
        let image = token.image_ref("token-leaks", "1");
        let metadata = out.join(format!("metadata-{}.json", unique_suffix(label)));
        let mut cmd = env.brix_in(&b.store);
        cmd.env("DOCKER_CONFIG", &config);
        if label == "RUST_LOG=trace" {
            cmd.env("RUST_LOG", "trace");
        }
        if label == "--debug" {
            cmd.arg("--debug");
        }
        let r = run(cmd
            .args(["build", "--builder", &b.name])
            .args(extra)
            .args([
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                &image,
                "--push",
            ])
            .arg("--metadata-file")
            .arg(&metadata)
            .arg(format!(
                "--cache-to=type=registry,ref={}",
                token.image_ref("token-leaks-cache", "c")
            ))
            .arg(path(&ctx)));
        assert!(r.success, "{label}: {}", r.stderr);
        for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            for leak in leaks(text, &token.password, &basic) {
                problems.push(format!("{label}: {leak} in {what}"));
            }
        }
        let meta = std::fs::read_to_string(&metadata).expect("metadata file");
        for leak in leaks(&meta, &token.password, &basic) {
            problems.push(format!("{label}: {leak} in the metadata file"));
        }
        // A failed push's error message names no secret either.
        let mut bad = env.brix_in(&b.store);
        let wrong = scratch.join("wrong-password");
        std::fs::create_dir_all(&wrong).expect("folder");
        let wrong_basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}-wrong", token.user, token.password));
        std::fs::write(
            wrong.join("config.json"),
            serde_json::json!({ "auths": { token.host.clone(): { "auth": wrong_basic } } })
                .to_string(),
        )
        .expect("config.json");
        let r = run(bad
            .env("DOCKER_CONFIG", &wrong)
            .args(["build", "--builder", &b.name])
            .args(extra)
            .args(["-t", &image, "--push"])
            .arg(path(&ctx)));
        assert!(
            !r.success,
            "{label}: a push with a wrong password succeeded"
        );
        for leak in leaks(&r.stderr, &token.password, &wrong_basic) {
            problems.push(format!("{label}: {leak} in a failed push's stderr"));
        }
    }
    // Nothing brix keeps on disk (the builder store, its local state) holds one either.
    for file in walk(&b.store) {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        for leak in leaks(&text, &token.password, &basic) {
            problems.push(format!("{leak} in {}", file.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "secrets leaked:\n{}",
        problems.join("\n")
    );
}

fn unique_suffix(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A password store of the test's own for `docker-credential-pass` (Debian's
/// golang-docker-credential-helpers): a throwaway gpg key without a passphrase, `pass init`,
/// and the registry's credentials stored through the helper itself. Returns the environment
/// the helper needs (`GNUPGHOME`, `PASSWORD_STORE_DIR`).
fn pass_store(
    dir: &std::path::Path,
    token: &brix_e2e::TokenRegistry,
) -> Vec<(String, std::path::PathBuf)> {
    use std::io::Write as _;
    let gnupg = dir.join("gnupg");
    let store = dir.join("password-store");
    std::fs::create_dir_all(&gnupg).expect("gnupg");
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod gnupg");
    let env = vec![
        ("GNUPGHOME".to_owned(), gnupg.clone()),
        ("PASSWORD_STORE_DIR".to_owned(), store),
    ];
    let with_env = |c: &mut Command| {
        for (k, v) in &env {
            c.env(k, v);
        }
    };
    let key = dir.join("key.conf");
    std::fs::write(
        &key,
        "%no-protection\nKey-Type: RSA\nKey-Length: 2048\nName-Real: brix e2e\nName-Email: e2e@brix.invalid\nExpire-Date: 0\n%commit\n",
    )
    .expect("key.conf");
    let mut gpg = Command::new("gpg");
    with_env(&mut gpg);
    run(gpg.args(["--batch", "--quiet", "--gen-key"]).arg(&key)).ok();
    let mut init = Command::new("pass");
    with_env(&mut init);
    run(init.args(["init", "e2e@brix.invalid"])).ok();
    let mut store_cmd = Command::new("docker-credential-pass");
    with_env(&mut store_cmd);
    let mut child = store_cmd
        .arg("store")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("docker-credential-pass (golang-docker-credential-helpers)");
    let secret = serde_json::json!({
        "ServerURL": token.host, "Username": token.user, "Secret": token.password
    });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(secret.to_string().as_bytes())
        .expect("write");
    assert!(
        child.wait().expect("wait").success(),
        "docker-credential-pass store failed"
    );
    env
}

#[test]
fn credentials_from_a_credential_helper_and_an_identity_token() {
    let Some(env) = E2eEnv::get() else { return };
    let token = env.token_registry().clone();
    let b = SharedBuilder::new(&env, "token-helper");
    let scratch = env.scratch_dir("token-helper");
    let helper_env = pass_store(&scratch, &token);
    let ctx = env.scratch_dir("token-helper-ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo helper > /h\n", env.busybox),
    )
    .expect("Dockerfile");

    // `credsStore` for every registry, then `credHelpers` for this one (over a wrong
    // `auths` entry, which the helper wins over).
    let wrong = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", token.user))
    };
    for (name, config_json) in [
        ("credsStore", serde_json::json!({ "credsStore": "pass" })),
        (
            "credHelpers",
            serde_json::json!({
                "auths": { token.host.clone(): { "auth": wrong } },
                "credHelpers": { token.host.clone(): "pass" },
            }),
        ),
    ] {
        let config = scratch.join(format!("config-{name}"));
        std::fs::create_dir_all(&config).expect("config folder");
        std::fs::write(config.join("config.json"), config_json.to_string()).expect("config.json");
        // The docker CLI finds real buildx under DOCKER_CONFIG.
        let plugins = config.join("cli-plugins");
        std::fs::create_dir_all(&plugins).expect("cli-plugins");
        let home = std::env::var("HOME").unwrap_or_default();
        let _ = std::os::unix::fs::symlink(
            std::path::Path::new(&home).join(".docker/cli-plugins/docker-buildx"),
            plugins.join("docker-buildx"),
        );
        if name == "credsStore" {
            // Every step of the done-when again, credentials from the helper only.
            push_pull_everywhere(&env, &b, &ctx, &config, &helper_env, "credsstore");
            docker_driver_push(&env, &ctx, &config, &helper_env, "credsstore");
            continue;
        }
        let image = token.image_ref(&format!("token-{}", name.to_lowercase()), "1");
        let mut build = b.build("brix");
        for (k, v) in &helper_env {
            build.env(k, v);
        }
        let r = run(build
            .env("DOCKER_CONFIG", &config)
            .args([
                "--progress",
                "plain",
                "--platform",
                "linux/amd64,linux/arm64",
            ])
            .args(["-t", &image, "--push"])
            .arg(path(&ctx)));
        assert!(
            r.success,
            "{name}: push with the helper's credentials:\n{}",
            r.stderr
        );
        assert_eq!(
            image_platforms(&raw_manifest(&env, &image)),
            ["linux/amd64", "linux/arm64"],
            "{name}"
        );
        for tool in ["brix", "buildx"] {
            let mut inspect = env.tool_in(tool, &b.store);
            for (k, v) in &helper_env {
                inspect.env(k, v);
            }
            let r = run(inspect.env("DOCKER_CONFIG", &config).args([
                "imagetools",
                "inspect",
                "--raw",
                &image,
            ]));
            assert!(
                r.success,
                "{name}: {tool} imagetools inspect:\n{}",
                r.stderr
            );
        }
    }

    // An identity token (an OAuth2 refresh token, what `docker login` keeps for registries
    // that hand one out): brix trades it for access tokens.
    let refresh = {
        let out = run(Command::new("curl").args([
            "-sf",
            "-u",
            &token.skopeo_creds(),
            "http://127.0.0.1:5002/token/?service=brix-e2e-registry&offline_token=true&client_id=e2e&scope=repository:brix/probe:pull",
        ]))
        .ok();
        let answer: serde_json::Value = serde_json::from_str(&out.stdout).expect("token JSON");
        answer["refresh_token"]
            .as_str()
            .expect("the token server hands out a refresh token")
            .to_owned()
    };
    let config = scratch.join("config-identitytoken");
    std::fs::create_dir_all(&config).expect("config folder");
    std::fs::write(
        config.join("config.json"),
        serde_json::json!({ "auths": { token.host.clone(): { "identitytoken": refresh } } })
            .to_string(),
    )
    .expect("config.json");
    let image = token.image_ref("token-identitytoken", "1");
    let r = run(b
        .build("brix")
        .env("DOCKER_CONFIG", &config)
        .args([
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .args(["-t", &image, "--push"])
        .arg(path(&ctx)));
    assert!(r.success, "push with an identity token:\n{}", r.stderr);
    assert!(
        !r.stderr.contains(&refresh),
        "the identity token was printed"
    );
    assert_eq!(
        image_platforms(&raw_manifest(&env, &image)),
        ["linux/amd64", "linux/arm64"]
    );
}

#[test]
fn a_push_that_outlives_its_token_gets_new_ones() {
    use brix_exporter::{OciLayout, Registry, RegistryOptions};
    let Some(env) = E2eEnv::get() else { return };
    let token = env.token_registry().clone();
    let short = env.short_token_registry();
    let faults = env.fault_proxies();
    let scratch = env.scratch_dir("token-refresh");
    // The registry refuses a token once lifetime + 60 s (its leeway) have passed: the push
    // is slowed down to last well beyond that, by a bandwidth toxic on a proxy of its own
    // (its own `localhost:PORT`, with the credentials under that name).
    let outlives = short.lifetime + Duration::from_secs(60);
    let target = outlives + Duration::from_secs(15);
    const LAYER: usize = 8_000_000;
    let proxy = faults.tcp_proxy("token-refresh", &short.addr);
    // toxiproxy's rate is in KB/s (1000 bytes), per connection; each layer has its own.
    let rate = (LAYER as u64 / 1000 / target.as_secs()).max(1);
    proxy.add_toxic(
        "slow",
        "bandwidth",
        1.0,
        serde_json::json!({ "rate": rate }),
    );
    let proxied = brix_e2e::TokenRegistry {
        host: proxy.host(),
        ..token.clone()
    };
    let config = proxied.docker_config(&scratch).join("config.json");
    let (layout, _) = brix_e2e::layouts::two_platform_layout(
        &scratch.join("layout"),
        LAYER,
        u64::from(std::process::id()),
    );
    let layout = OciLayout::open(layout.root()).expect("layout");
    let image = proxied.image_ref("token-refresh", "1");
    let repository = image.trim_end_matches(":1");

    let issued_before = short.tokens_issued();
    let started = std::time::Instant::now();
    let registry = Registry::new(RegistryOptions {
        docker_config: Some(config),
        ..RegistryOptions::default()
    });
    let result = tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(registry.push_layout(&layout, repository, &["1".into()]));
    let took = started.elapsed();
    let issued = short.tokens_issued() - issued_before;
    eprintln!(
        "push through {}s tokens took {took:?}; {issued} tokens issued",
        short.lifetime.as_secs()
    );
    let report = result.unwrap_or_else(|e| {
        panic!("a push lasting {took:?} with tokens valid {short:?} failed: {e}")
    });
    assert!(
        took > outlives,
        "the push took {took:?}, not longer than the token's lifetime and the leeway ({outlives:?}): slow it down more"
    );
    assert!(
        issued >= 2,
        "{issued} tokens issued during a push of {took:?} with tokens valid {:?}",
        short.lifetime
    );
    // The index is there, read from the registry itself.
    let direct = format!(
        "docker://{}/{}",
        short.addr.replacen("127.0.0.1", "localhost", 1),
        image.split_once('/').map_or("", |(_, rest)| rest)
    );
    let raw = skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &token.skopeo_creds(),
        &direct,
    ])
    .ok();
    let index: serde_json::Value = serde_json::from_str(&raw.stdout).expect("a JSON index");
    assert_eq!(
        image_platforms(&index),
        ["linux/amd64", "linux/arm64"],
        "{index}"
    );
    assert_eq!(
        brix_exporter::descriptor::sha256_digest(raw.stdout.as_bytes()),
        report.digest()
    );
}
