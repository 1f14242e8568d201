//! Step 15: real fault-injecting proxies in front of a registry of their own, for the push
//! fault tests (issue 17).
//!
//! - **The upstream**: Debian's docker-registry on 127.0.0.1:5012 (plain HTTP, deletes
//!   enabled), its storage under `target/e2e/fault-proxy/registry/data`, which the tests are
//!   told, so they can look at uploads in flight and remove the 100 MB blobs they pushed.
//! - **HTTP faults**: Debian's nginx on 127.0.0.1:5010, a reverse proxy to that registry
//!   that answers a random [`UNAVAILABLE_PERCENT`] of the requests to
//!   `/v2/…/blobs/…` and `/v2/…/manifests/…` with 503 and another [`THROTTLED_PERCENT`] with
//!   429 and `Retry-After: 1` itself (`split_clients` over `$request_id`), and passes
//!   everything else through unbuffered (bodies of any size streamed both ways, `Host` kept,
//!   so the registry's upload `Location`s point back at the proxy). Its access log names the
//!   fault it injected on each line, so a test can tell that faults were hit.
//! - **TCP faults**: toxiproxy (`github.com/Shopify/toxiproxy/v2`, v2.5.0 from the Go module
//!   proxy; its go.mod pins its dependencies) with its API on 127.0.0.1:8474 and proxy metrics
//!   on. It starts with no proxy: each test makes its own (`127.0.0.1:0` → any upstream) and
//!   adds the toxics it needs (connections cut after N bytes, reset, bandwidth, the proxy
//!   disabled as a registry that went down), so tests running at the same time never see
//!   each other's faults.
//!
//! Both listen on loopback, which brix (and Docker) talk to over plain HTTP as
//! `localhost:PORT`. Files live under `target/e2e/fault-proxy/`.

use super::process;
use super::{Workspace, go_toolchain};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The registry behind the proxies.
pub const UPSTREAM_ADDR: &str = "127.0.0.1:5012";
/// The same as image references name it.
pub const UPSTREAM_HOST: &str = "localhost:5012";
/// nginx's address.
pub const HTTP_FAULTS_ADDR: &str = "127.0.0.1:5010";
/// nginx as image references name it.
pub const HTTP_FAULTS_HOST: &str = "localhost:5010";
/// Blob and manifest requests answered 503 by nginx itself.
pub const UNAVAILABLE_PERCENT: u32 = 8;
/// Blob and manifest requests answered 429 with `Retry-After: 1`.
pub const THROTTLED_PERCENT: u32 = 7;
/// toxiproxy's API.
pub const TOXIPROXY_API: &str = "127.0.0.1:8474";
/// The toxiproxy server built.
const TOXIPROXY_MODULE: &str = "github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0";

fn dir(ws: &Workspace) -> PathBuf {
    ws.e2e_dir.join("fault-proxy")
}

fn upstream_storage(ws: &Workspace) -> PathBuf {
    dir(ws).join("registry").join("data")
}

fn nginx_dir(ws: &Workspace) -> PathBuf {
    dir(ws).join("nginx")
}

/// nginx's access log: `STATUS METHOD URI fault=unavailable|throttled|` per request.
fn access_log(ws: &Workspace) -> PathBuf {
    nginx_dir(ws).join("access.log")
}

fn toxiproxy_binary(ws: &Workspace) -> PathBuf {
    dir(ws).join("bin").join("toxiproxy-server")
}

/// Whether the upstream registry answers `GET /v2/` with 200.
fn upstream_running() -> bool {
    super::registry::v2_status(UPSTREAM_ADDR) == Some(200)
}

/// Whether nginx passes `GET /v2/` through to the registry.
fn nginx_running() -> bool {
    super::registry::v2_status(HTTP_FAULTS_ADDR) == Some(200)
}

/// Whether toxiproxy's API answers.
fn toxiproxy_running() -> bool {
    super::registry::http_status(TOXIPROXY_API, "/version") == Some(200)
}

/// The variables `cargo xtask e2e` gives the tests for what is running: the upstream
/// registry (`BRIX_E2E_FAULT_UPSTREAM`, `localhost:5012`, and `BRIX_E2E_FAULT_UPSTREAM_STORAGE`),
/// nginx (`BRIX_E2E_FAULT_PROXY`, `localhost:5010`, and `BRIX_E2E_FAULT_PROXY_ACCESS_LOG`)
/// and toxiproxy (`BRIX_E2E_TOXIPROXY`, the API's `host:port`).
pub fn test_env(ws: &Workspace) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if upstream_running() {
        vars.extend([
            ("BRIX_E2E_FAULT_UPSTREAM", UPSTREAM_HOST.to_owned()),
            (
                "BRIX_E2E_FAULT_UPSTREAM_STORAGE",
                upstream_storage(ws).display().to_string(),
            ),
        ]);
    }
    if upstream_running() && nginx_running() {
        vars.extend([
            ("BRIX_E2E_FAULT_PROXY", HTTP_FAULTS_HOST.to_owned()),
            (
                "BRIX_E2E_FAULT_PROXY_ACCESS_LOG",
                access_log(ws).display().to_string(),
            ),
        ]);
    }
    if toxiproxy_running() {
        vars.push(("BRIX_E2E_TOXIPROXY", TOXIPROXY_API.to_owned()));
    }
    vars
}

/// Builds toxiproxy once, writes the configurations, and starts whichever of the registry,
/// nginx and toxiproxy is not running (a running nginx reloads when its configuration
/// changed).
pub fn ensure(ws: &Workspace) -> Result<String> {
    super::packages::require_command("nginx")?;
    super::packages::require_command("docker-registry")?;
    let mut done = Vec::new();

    if upstream_running() {
        done.push(format!("registry already on {UPSTREAM_ADDR}"));
    } else {
        let data = upstream_storage(ws);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let registry = dir(ws).join("registry");
        let config = registry.join("config.yml");
        std::fs::write(&config, registry_config(&data, UPSTREAM_ADDR))
            .with_context(|| format!("writing {}", config.display()))?;
        super::registry::serve(
            "the fault proxies' registry",
            &config,
            &registry.join("registry.log"),
            upstream_running,
        )?;
        done.push(format!("registry on {UPSTREAM_ADDR}"));
    }

    let nginx = nginx_dir(ws);
    std::fs::create_dir_all(nginx.join("tmp"))
        .with_context(|| format!("creating {}", nginx.join("tmp").display()))?;
    let config_file = nginx.join("nginx.conf");
    let config = nginx_config(&nginx, HTTP_FAULTS_ADDR, UPSTREAM_ADDR);
    let changed = std::fs::read_to_string(&config_file).ok().as_deref() != Some(config.as_str());
    if changed {
        std::fs::write(&config_file, &config)
            .with_context(|| format!("writing {}", config_file.display()))?;
    }
    let error_log = nginx.join("error.log");
    let nginx_cmd = || {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&nginx)
            .arg("-c")
            .arg(&config_file)
            .arg("-e")
            .arg(&error_log);
        cmd
    };
    if nginx_running() {
        if changed {
            process::output(nginx_cmd().args(["-s", "reload"]))
                .context("reloading nginx with its new configuration")?;
            done.push(format!("nginx on {HTTP_FAULTS_ADDR} reloaded"));
        } else {
            done.push(format!("nginx already on {HTTP_FAULTS_ADDR}"));
        }
    } else {
        process::output(nginx_cmd().arg("-t")).context("nginx -t refuses the configuration")?;
        let mut daemon = process::spawn_detached(&nginx_cmd(), &error_log)?;
        process::wait_until(
            "nginx",
            &mut daemon,
            Duration::from_secs(30),
            &error_log,
            nginx_running,
        )?;
        done.push(format!(
            "nginx on {HTTP_FAULTS_ADDR} → {UPSTREAM_ADDR} ({UNAVAILABLE_PERCENT}% 503, \
             {THROTTLED_PERCENT}% 429 of blob and manifest requests)"
        ));
    }

    if toxiproxy_running() {
        done.push(format!("toxiproxy already on {TOXIPROXY_API}"));
    } else {
        let built = build_toxiproxy(ws)?;
        let log = dir(ws).join("toxiproxy.log");
        let (host, port) = TOXIPROXY_API
            .split_once(':')
            .context("the API address has a port")?;
        let mut serve = Command::new(toxiproxy_binary(ws));
        serve.args(["-host", host, "-port", port, "-proxy-metrics"]);
        let mut daemon = process::spawn_detached(&serve, &log)?;
        process::wait_until(
            "toxiproxy",
            &mut daemon,
            Duration::from_secs(30),
            &log,
            toxiproxy_running,
        )?;
        done.push(format!("{built}toxiproxy API on {TOXIPROXY_API}"));
    }
    Ok(format!(
        "{}; logs in {}",
        done.join(", "),
        ws.display(&dir(ws))
    ))
}

/// `go install`s the toxiproxy server unless it is built.
fn build_toxiproxy(ws: &Workspace) -> Result<String> {
    let bin = toxiproxy_binary(ws);
    if bin.is_file() {
        return Ok(String::new());
    }
    let go = go_toolchain::go_binary(ws)?;
    let gobin = dir(ws).join("gobin");
    std::fs::create_dir_all(&gobin)?;
    process::logged(
        Command::new(&go)
            .env("GOBIN", &gobin)
            .env("CGO_ENABLED", "0")
            .args(["install", "-trimpath", TOXIPROXY_MODULE]),
        &dir(ws).join("go-install.log"),
    )
    .context("building toxiproxy from the Go module proxy (`go env GOPROXY`)")?;
    std::fs::create_dir_all(bin.parent().context("the binary has a folder")?)?;
    // `go install` names it after its package folder, `server`.
    std::fs::rename(gobin.join("server"), &bin)?;
    Ok(format!("built {TOXIPROXY_MODULE}, "))
}

/// The upstream registry's configuration: loopback only, its own storage, deletes allowed.
fn registry_config(data: &Path, addr: &str) -> String {
    let quote = serde_json::Value::from(data.to_string_lossy()).to_string();
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: fault-proxy-registry\n\
         storage:\n  filesystem:\n    rootdirectory: {quote}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n"
    )
}

/// nginx's configuration: the proxy on `listen` in front of `upstream`, with its pid, logs
/// and temporary files under `prefix`, in the foreground (the step detaches it).
fn nginx_config(prefix: &Path, listen: &str, upstream: &str) -> String {
    let p = prefix.display();
    let rest = 100 - UNAVAILABLE_PERCENT - THROTTLED_PERCENT;
    format!(
        r#"# Written by `cargo xtask e2e` (xtask/src/e2e/fault_proxy.rs); rewritten by every set-up.
daemon off;
# Its temporary files are under the prefix, which root owns.
user root;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{
    worker_connections 512;
}}
http {{
    client_body_temp_path {p}/tmp/client_body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    log_format faults '$status $request_method $uri fault=$fault';
    access_log {p}/access.log faults;

    # A random draw per request ({rest}% of them pass).
    split_clients "$request_id" $fault {{
        {UNAVAILABLE_PERCENT}% unavailable;
        {THROTTLED_PERCENT}% throttled;
        * "";
    }}

    server {{
        listen {listen};
        # Blobs of any size, streamed both ways rather than spooled to disk.
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        # The registry builds its upload Locations from Host: they point back here.
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        # The bodies of the answers nginx makes itself.
        default_type application/json;

        location / {{
            proxy_pass http://{upstream};
        }}

        location ~ ^/v2/.+/(blobs|manifests)/ {{
            if ($fault = unavailable) {{
                return 503 '{{"errors":[{{"code":"UNAVAILABLE","message":"service unavailable (injected by the e2e fault proxy)"}}]}}';
            }}
            if ($fault = throttled) {{
                add_header Retry-After 1 always;
                return 429 '{{"errors":[{{"code":"TOOMANYREQUESTS","message":"too many requests (injected by the e2e fault proxy)"}}]}}';
            }}
            proxy_pass http://{upstream};
        }}
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_faults_only_blob_and_manifest_requests() {
        let config = nginx_config(Path::new("/p"), "127.0.0.1:5010", "127.0.0.1:5012");
        assert!(config.contains("listen 127.0.0.1:5010;"), "{config}");
        assert!(
            config.contains("proxy_pass http://127.0.0.1:5012;"),
            "{config}"
        );
        assert!(
            config.contains("location ~ ^/v2/.+/(blobs|manifests)/"),
            "{config}"
        );
        assert!(config.contains("8% unavailable;"), "{config}");
        assert!(config.contains("7% throttled;"), "{config}");
        assert!(
            config.contains("add_header Retry-After 1 always;"),
            "{config}"
        );
        assert!(config.contains("pid /p/nginx.pid;"), "{config}");
        // Braces balance: every format!-escaped block is closed.
        assert_eq!(config.matches('{').count(), config.matches('}').count());
    }
}
