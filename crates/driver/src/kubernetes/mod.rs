//! The kubernetes driver: BuildKit daemons as pods of a Deployment (one per node of the
//! builder, named after the node, `replicas` pods each), configured by ConfigMaps made from
//! the node's buildkitd.toml, reached by exec'ing `buildctl dial-stdio` in a pod through the
//! API server (WebSocket), as buildx's `kubernetes` driver does. Typed access through kube-rs.
//!
//! - [`options`]: the `--driver-opt` keys; [`manifest`]: the objects; [`pod_choice`]:
//!   `loadbalance=sticky|random`.
//! - Where brix goes beyond buildx: `stop` scales the node to zero pods (buildx's does
//!   nothing) and `bootstrap` scales it back; `inspect`/`ls` read each pod's own daemon
//!   (buildx shows one pod's data for all); `hostnetwork=true` runs the pods on the node's
//!   network; `persistent-volume-claim.size` keeps each pod's state on a volume claim (a
//!   StatefulSet).

pub mod manifest;
pub mod options;
pub mod pod_choice;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use kube::api::{Api, AttachParams, AttachedProcess, DeleteParams, ListParams, Patch, PatchParams};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, SimplexStream, WriteHalf};
use tokio::sync::OnceCell;

use brix_config::Platform;
use brix_solver_client::ControlClient;

use crate::DriverError;
use crate::driver::{
    BootstrapEvent, BootstrapSink, BoxedDaemonIo, Driver, Features, Instance, RmOptions, Status,
};
use manifest::{NodeObjects, NodeSpec, Workload};
use options::{KubernetesOptions, LoadBalance};

/// The field manager brix applies its objects as.
const FIELD_MANAGER: &str = "brix";
/// The exec stream buffers (kube's default, 1 KiB, makes a context upload crawl).
const EXEC_BUFFER: usize = 1 << 20;

/// The endpoint buildx stores for a kubernetes node:
/// `kubernetes:///<builder>?deployment=<id>&kubeconfig=<$KUBECONFIG>` (query-escaped as Go's
/// `url.Values.Encode`), unique per node so `create --append` can add more.
pub fn endpoint(builder: &str, deployment_id: &str, kubeconfig: &str) -> String {
    format!(
        "kubernetes:///{builder}?deployment={}&kubeconfig={}",
        go_query_escape(deployment_id),
        go_query_escape(kubeconfig)
    )
}

/// The `kubeconfig` an endpoint names (empty: the default lookup).
pub fn endpoint_kubeconfig(endpoint: &str) -> Option<PathBuf> {
    let query = endpoint.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "kubeconfig")
        .map(|(_, v)| PathBuf::from(v.into_owned()))
        .filter(|p| !p.as_os_str().is_empty())
}

/// A node id for the endpoint when `create` names no node, as buildx makes it:
/// `buildkit-<uuid>-<5 characters>`.
pub fn generate_deployment_id() -> String {
    // The apiserver's `SimpleNameGenerator` alphabet, drawn from a second random UUID.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("buildkit-{}-{suffix}", uuid::Uuid::new_v4())
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX`.
fn go_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The Deployment name of a node: its name with `_` as `-` (buildx's
/// `buildxNameToDeploymentName`).
pub fn deployment_name(node: &str) -> String {
    node.replace('_', "-")
}

/// A kubernetes node of a builder.
pub struct KubernetesDriver {
    name: String,
    endpoint: String,
    opts: KubernetesOptions,
    flags: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    platforms: Vec<Platform>,
    /// What `sticky` hashes: the build context's absolute path (buildx's `ContextPathHash`).
    sticky_key: String,
    /// When set, every connection goes to this pod (an [`Instance`] of `inspect`/`ls`).
    pod: Option<String>,
    api: OnceCell<ApiAccess>,
}

/// A client and the namespace the node lives in.
#[derive(Clone)]
struct ApiAccess {
    client: kube::Client,
    namespace: String,
    server: String,
}

impl KubernetesDriver {
    /// The driver for node `node` (stored name, endpoint, options, flags, files, pinned
    /// platforms); `sticky_key` is what `loadbalance=sticky` hashes (the build context's
    /// absolute path; empty for commands without one).
    pub fn new(node: &crate::Node, sticky_key: &str) -> Result<Self, DriverError> {
        Ok(KubernetesDriver {
            name: deployment_name(&node.name),
            endpoint: node.endpoint.clone(),
            opts: KubernetesOptions::parse(&node.driver_opts)?,
            flags: node.buildkitd_flags.clone(),
            files: node.files.clone(),
            platforms: node.platforms.clone(),
            sticky_key: sticky_key.to_string(),
            pod: None,
            api: OnceCell::new(),
        })
    }

    /// The node's Deployment (or StatefulSet) name.
    pub fn deployment(&self) -> &str {
        &self.name
    }

    /// The objects the node is made of, in `namespace`.
    pub fn objects(&self, namespace: &str) -> NodeObjects {
        manifest::node_objects(&NodeSpec {
            name: &self.name,
            namespace,
            opts: &self.opts,
            flags: &self.flags,
            files: &self.files,
            platforms: &self.platforms,
        })
    }

    async fn api(&self) -> Result<&ApiAccess, DriverError> {
        self.api
            .get_or_try_init(|| async {
                let (config, source) = load_config(&self.endpoint).await?;
                let namespace = self
                    .opts
                    .namespace
                    .clone()
                    .unwrap_or_else(|| config.default_namespace.clone());
                let server = config.cluster_url.to_string();
                // kube builds its TLS from rustls's process default; the tree has two
                // providers, so name one (ring, as every other client of brix). Another
                // caller may have installed one first, which is as good.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = kube::Client::try_from(config).map_err(|e| {
                    DriverError::Invalid(format!(
                        "kubernetes driver: cannot use the cluster of {source}: {}",
                        kube_reason(&e)
                    ))
                })?;
                Ok(ApiAccess {
                    client,
                    namespace,
                    server,
                })
            })
            .await
    }

    fn error(&self, api: &ApiAccess, action: &str, e: kube::Error) -> DriverError {
        kube_error(&api.server, action, e)
    }

    /// `(wanted, ready)` pods, or `None` when the node's workload does not exist.
    async fn replicas(&self, api: &ApiAccess) -> Result<Option<(i32, i32)>, DriverError> {
        let ns = &api.namespace;
        let counts = if self.opts.persistent_volume.is_some() {
            let sets: Api<StatefulSet> = Api::namespaced(api.client.clone(), ns);
            sets.get_opt(&self.name)
                .await
                .map_err(|e| {
                    self.error(api, &format!("reading statefulset {ns}/{}", self.name), e)
                })?
                .map(|s| {
                    (
                        s.spec.and_then(|s| s.replicas).unwrap_or(1),
                        s.status.and_then(|s| s.ready_replicas).unwrap_or(0),
                    )
                })
        } else {
            let deployments: Api<Deployment> = Api::namespaced(api.client.clone(), ns);
            deployments
                .get_opt(&self.name)
                .await
                .map_err(|e| self.error(api, &format!("reading deployment {ns}/{}", self.name), e))?
                .map(|d| {
                    (
                        d.spec.and_then(|s| s.replicas).unwrap_or(1),
                        d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
                    )
                })
        };
        Ok(counts)
    }

    /// Every pod of the node (`app=<node>`), in any phase.
    async fn node_pods(&self, api: &ApiAccess) -> Result<Vec<Pod>, DriverError> {
        let pods: Api<Pod> = Api::namespaced(api.client.clone(), &api.namespace);
        let selector = format!("{}={}", manifest::LABEL_APP, self.name);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error(api, &format!("listing the pods of {}", self.name), e))?;
        Ok(list.items)
    }

    /// The node's pods in the Running phase, sorted by name, with their pinned platforms.
    async fn running_pods(
        &self,
        api: &ApiAccess,
    ) -> Result<Vec<(String, Vec<Platform>)>, DriverError> {
        let mut out: Vec<(String, Vec<Platform>)> = self
            .node_pods(api)
            .await?
            .into_iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && p.metadata.deletion_timestamp.is_none()
            })
            .filter_map(|p| {
                let platforms = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(manifest::ANNOTATION_PLATFORM))
                    .map(|list| {
                        list.split(',')
                            .filter_map(|s| Platform::parse(s.trim()).ok())
                            .collect()
                    })
                    .unwrap_or_default();
                Some((p.metadata.name?, platforms))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Why the node's pods are not ready, pod by pod (`kube0-…: ImagePullBackOff: …`).
    async fn pod_problems(&self, api: &ApiAccess) -> Vec<String> {
        let Ok(pods) = self.node_pods(api).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in pods {
            let name = p.metadata.name.unwrap_or_default();
            let status = p.status.unwrap_or_default();
            let waiting = status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                .find_map(|w| {
                    let reason = w.reason.clone()?;
                    Some(match &w.message {
                        Some(m) => format!("{reason}: {m}"),
                        None => reason,
                    })
                });
            let unscheduled = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .and_then(|c| c.message.clone());
            if let Some(why) = waiting.or(unscheduled) {
                out.push(format!("{name}: {why}"));
            }
        }
        out
    }

    /// The pod a new connection goes to, waiting (up to the node's timeout) while none runs.
    async fn choose_pod(&self, api: &ApiAccess) -> Result<String, DriverError> {
        if let Some(pod) = &self.pod {
            return Ok(pod.clone());
        }
        let deadline = Instant::now() + self.opts.timeout;
        loop {
            let pods: Vec<String> = self
                .running_pods(api)
                .await?
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            let chosen = match self.opts.loadbalance {
                LoadBalance::Sticky => pod_choice::sticky(&pods, &self.sticky_key),
                LoadBalance::Random => pod_choice::random(&pods),
            };
            if let Some(pod) = chosen {
                tracing::info!(pod, namespace = %api.namespace, "connecting to BuildKit");
                return Ok(pod.to_string());
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Connect {
                    endpoint: format!("deployment {}/{}", api.namespace, self.name),
                    reason: format!(
                        "no pod is running after {} (see `kubectl -n {} get pods -l app={}`)",
                        human_duration(self.opts.timeout),
                        api.namespace,
                        self.name
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Applies the node's ConfigMaps and workload (server-side apply: created when missing,
    /// updated and scaled back up when stopped).
    async fn apply(&self, api: &ApiAccess) -> Result<(), DriverError> {
        let ns = &api.namespace;
        let objects = self.objects(ns);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let maps: Api<ConfigMap> = Api::namespaced(api.client.clone(), ns);
        for map in &objects.config_maps {
            let name = map.metadata.name.clone().unwrap_or_default();
            maps.patch(&name, &params, &Patch::Apply(map))
                .await
                .map_err(|e| self.error(api, &format!("applying configmap {ns}/{name}"), e))?;
        }
        match &objects.workload {
            Workload::Deployment(d) => {
                let api_d: Api<Deployment> = Api::namespaced(api.client.clone(), ns);
                api_d
                    .patch(&self.name, &params, &Patch::Apply(d.as_ref()))
                    .await
                    .map_err(|e| {
                        self.error(api, &format!("applying deployment {ns}/{}", self.name), e)
                    })?;
            }
            Workload::StatefulSet(s) => {
                let api_s: Api<StatefulSet> = Api::namespaced(api.client.clone(), ns);
                api_s
                    .patch(&self.name, &params, &Patch::Apply(s.as_ref()))
                    .await
                    .map_err(|e| {
                        self.error(api, &format!("applying statefulset {ns}/{}", self.name), e)
                    })?;
            }
        }
        Ok(())
    }

    async fn wait_ready(&self, api: &ApiAccess) -> Result<(), DriverError> {
        let deadline = Instant::now() + self.opts.timeout;
        let mut last = String::new();
        loop {
            if let Some((_, ready)) = self.replicas(api).await? {
                if ready >= self.opts.replicas {
                    return Ok(());
                }
                last = format!(
                    "expected {} replicas to be ready, got {ready}",
                    self.opts.replicas
                );
            }
            if Instant::now() >= deadline {
                let problems = self.pod_problems(api).await;
                let why = if problems.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", problems.join("; "))
                };
                return Err(DriverError::NotReady {
                    what: format!("deployment {}/{}", api.namespace, self.name),
                    timeout: self.opts.timeout,
                    reason: format!("{last}{why}"),
                    logs: Vec::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits (up to the node's timeout) until none of the node's pods is left.
    async fn wait_no_pods(&self, api: &ApiAccess) -> Result<(), DriverError> {
        let deadline = Instant::now() + self.opts.timeout;
        while Instant::now() < deadline {
            if self.node_pods(api).await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    async fn scale(&self, api: &ApiAccess, replicas: i32) -> Result<(), DriverError> {
        let ns = &api.namespace;
        let scale = k8s_openapi::api::autoscaling::v1::Scale {
            spec: Some(k8s_openapi::api::autoscaling::v1::ScaleSpec {
                replicas: Some(replicas),
            }),
            ..Default::default()
        };
        let r = if self.opts.persistent_volume.is_some() {
            let sets: Api<StatefulSet> = Api::namespaced(api.client.clone(), ns);
            sets.patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&scale))
                .await
                .map(|_| ())
        } else {
            let deployments: Api<Deployment> = Api::namespaced(api.client.clone(), ns);
            deployments
                .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&scale))
                .await
                .map(|_| ())
        };
        match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            r => r.map_err(|e| {
                self.error(api, &format!("scaling {ns}/{} to {replicas}", self.name), e)
            }),
        }
    }

    /// [`Self::exec_once`], tried again for a while when the exec is refused (a pod that is
    /// Running but whose container is still starting, or restarting).
    async fn exec_dial_stdio(api: &ApiAccess, pod: &str) -> Result<ExecIo, DriverError> {
        let mut tries = 0;
        loop {
            match Self::exec_once(api, pod).await {
                Err(DriverError::Invalid(reason)) if tries < 5 => {
                    tracing::debug!(pod, %reason, "exec refused; trying again");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 << tries)).await;
                }
                other => return other,
            }
        }
    }

    async fn exec_once(api: &ApiAccess, pod: &str) -> Result<ExecIo, DriverError> {
        let pods: Api<Pod> = Api::namespaced(api.client.clone(), &api.namespace);
        let params = AttachParams::default()
            .container(manifest::CONTAINER_NAME)
            .stdin(true)
            .stdout(true)
            .stderr(false)
            .max_stdin_buf_size(EXEC_BUFFER)
            .max_stdout_buf_size(EXEC_BUFFER);
        let mut process = pods
            .exec(pod, ["buildctl", "dial-stdio"], &params)
            .await
            .map_err(|e| {
                kube_error(
                    &api.server,
                    &format!("exec buildctl dial-stdio in pod {}/{pod}", api.namespace),
                    e,
                )
            })?;
        let (Some(stdin), Some(stdout)) = (process.stdin(), process.stdout()) else {
            return Err(DriverError::Connect {
                endpoint: format!("pod {}/{pod}", api.namespace),
                reason: "the exec gave no stdin/stdout".into(),
            });
        };
        Ok(ExecIo {
            stdin,
            stdout,
            _process: process,
        })
    }
}

/// Loads the client configuration as buildx does: the endpoint's `kubeconfig`, else
/// `$KUBECONFIG` / `~/.kube/config`, else the in-cluster service account.
async fn load_config(endpoint: &str) -> Result<(kube::Config, String), DriverError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions::default();
    let from_file = match endpoint_kubeconfig(endpoint) {
        Some(path) => {
            let source = path.display().to_string();
            let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| {
                DriverError::Invalid(format!(
                    "kubernetes driver: cannot read kubeconfig {source} (named by the builder's endpoint, from KUBECONFIG at create time): {}",
                    deepest(&e)
                ))
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map(|c| (c, source))
        }
        None => {
            let source = std::env::var("KUBECONFIG")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "~/.kube/config".to_string());
            kube::Config::from_kubeconfig(&options)
                .await
                .map(|c| (c, source))
        }
    };
    let tried = endpoint_kubeconfig(endpoint)
        .map(|p| p.display().to_string())
        .or_else(|| std::env::var("KUBECONFIG").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "~/.kube/config".to_string());
    match from_file {
        Ok(found) => Ok(found),
        Err(file_error) => match kube::Config::incluster() {
            Ok(c) => Ok((c, "the in-cluster service account".to_string())),
            Err(_) => Err(DriverError::Invalid(format!(
                "kubernetes driver requires kubernetes API access: {tried}: {} (set KUBECONFIG or write ~/.kube/config; inside a pod, its service account is used)",
                deepest(&file_error)
            ))),
        },
    }
}

/// The innermost cause of an error (the one that says what really happened).
fn deepest(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The part of a kube error worth showing: the API server's message, or the deepest cause
/// of a transport failure.
fn kube_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => deepest(other),
    }
}

/// One line for a failed API call: the server's answer, or that the server is unreachable.
fn kube_error(server: &str, action: &str, e: kube::Error) -> DriverError {
    match &e {
        kube::Error::Api(status) => {
            // The one mistake everyone makes first: a namespace that is not there.
            let hint = match status.message.strip_prefix("namespaces \"") {
                Some(rest) if status.code == 404 => rest
                    .split_once('"')
                    .map(|(ns, _)| {
                        format!(" (create it with `kubectl create namespace {ns}`, or choose another with --driver-opt namespace=...)")
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            DriverError::Invalid(format!(
                "kubernetes driver: {action}: {} ({}){hint}",
                status.message, status.code
            ))
        }
        _ => DriverError::KubernetesUnreachable {
            server: server.trim_end_matches('/').to_string(),
            reason: kube_reason(&e),
        },
    }
}

/// Go's `units.HumanDuration`, as buildx words the readiness timeout.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = minutes / 60;
    match () {
        _ if seconds < 1 => "Less than a second".to_string(),
        _ if seconds == 1 => "1 second".to_string(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours < 2 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ => format!("{} days", hours / 24),
    }
}

/// `buildctl dial-stdio`'s stdio in a pod, as one byte stream.
struct ExecIo {
    stdin: WriteHalf<SimplexStream>,
    stdout: ReadHalf<SimplexStream>,
    _process: AttachedProcess,
}

impl AsyncRead for ExecIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for ExecIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

impl Driver for KubernetesDriver {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn status(&self) -> BoxFuture<'_, Result<Status, DriverError>> {
        Box::pin(async move {
            let api = self.api().await?;
            Ok(match self.replicas(api).await? {
                None => Status::Inactive,
                Some((_, ready)) if ready <= 0 => Status::Stopped,
                Some(_) => Status::Running,
            })
        })
    }

    fn bootstrap<'a>(
        &'a self,
        sink: &'a dyn BootstrapSink,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let api = self.api().await?;
            self.apply(api).await?;
            let step = format!(
                "waiting for {} pods to be ready, timeout: {}",
                self.opts.replicas,
                human_duration(self.opts.timeout)
            );
            sink.event(BootstrapEvent::StepStarted { step: step.clone() });
            let r = self.wait_ready(api).await;
            sink.event(BootstrapEvent::StepFinished {
                step,
                error: r.as_ref().err().map(ToString::to_string),
            });
            r
        })
    }

    fn stop(&self, _force: bool) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async move {
            let api = self.api().await?;
            self.scale(api, 0).await?;
            // Gone, not only unready, as stopping a container waits for it to exit.
            self.wait_no_pods(api).await
        })
    }

    fn rm(&self, opts: RmOptions) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async move {
            if opts.keep_daemon {
                return Ok(());
            }
            let api = self.api().await?;
            let ns = &api.namespace;
            let dp = DeleteParams::background();
            let gone = |r: Result<(), kube::Error>, what: String| match r {
                Ok(()) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(self.error(api, &format!("deleting {what}"), e)),
            };
            let deployments: Api<Deployment> = Api::namespaced(api.client.clone(), ns);
            gone(
                deployments.delete(&self.name, &dp).await.map(|_| ()),
                format!("deployment {ns}/{}", self.name),
            )?;
            let sets: Api<StatefulSet> = Api::namespaced(api.client.clone(), ns);
            gone(
                sets.delete(&self.name, &dp).await.map(|_| ()),
                format!("statefulset {ns}/{}", self.name),
            )?;
            let maps: Api<ConfigMap> = Api::namespaced(api.client.clone(), ns);
            for map in self.objects(ns).config_maps {
                let name = map.metadata.name.unwrap_or_default();
                gone(
                    maps.delete(&name, &dp).await.map(|_| ()),
                    format!("configmap {ns}/{name}"),
                )?;
            }
            if !opts.keep_state {
                // The claims a StatefulSet made: `<claim>-<set>-<ordinal>`.
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(api.client.clone(), ns);
                let prefix = format!("{}-{}-", manifest::STATE_VOLUME, self.name);
                let list = claims
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| self.error(api, "listing volume claims", e))?;
                for claim in list.items {
                    let Some(name) = claim.metadata.name else {
                        continue;
                    };
                    if name
                        .strip_prefix(&prefix)
                        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                    {
                        gone(
                            claims.delete(&name, &dp).await.map(|_| ()),
                            format!("persistentvolumeclaim {ns}/{name}"),
                        )?;
                    }
                }
            }
            // Nothing of the node is left running when `rm` returns.
            self.wait_no_pods(api).await
        })
    }

    fn dial(&self) -> BoxFuture<'_, Result<BoxedDaemonIo, DriverError>> {
        Box::pin(async move {
            let api = self.api().await?;
            let pod = self.choose_pod(api).await?;
            let io = Self::exec_dial_stdio(api, &pod).await?;
            Ok(Box::pin(io) as BoxedDaemonIo)
        })
    }

    fn connect(&self) -> BoxFuture<'_, Result<ControlClient, DriverError>> {
        Box::pin(async move {
            let api = self.api().await?.clone();
            // One pod per client: a build's session and solves must meet on one daemon, so
            // reconnects go back to the same pod.
            let pod = self.choose_pod(&api).await?;
            let label = format!("kube-pod://{pod}?namespace={}", api.namespace);
            let client = ControlClient::from_connector(label, move || {
                let (api, pod) = (api.clone(), pod.clone());
                async move {
                    Self::exec_dial_stdio(&api, &pod)
                        .await
                        .map_err(std::io::Error::other)
                }
            })
            .await?;
            Ok(client)
        })
    }

    fn instances(&self) -> BoxFuture<'_, Result<Vec<Instance>, DriverError>> {
        Box::pin(async move {
            let api = self.api().await?;
            let pods = self.running_pods(api).await?;
            Ok(pods
                .into_iter()
                .map(|(name, platforms)| {
                    let driver = KubernetesDriver {
                        name: self.name.clone(),
                        endpoint: self.endpoint.clone(),
                        opts: self.opts.clone(),
                        flags: self.flags.clone(),
                        files: self.files.clone(),
                        platforms: self.platforms.clone(),
                        sticky_key: self.sticky_key.clone(),
                        pod: Some(name.clone()),
                        api: OnceCell::new_with(Some(api.clone())),
                    };
                    Instance {
                        name,
                        platforms,
                        driver: Box::new(driver),
                    }
                })
                .collect())
        })
    }

    fn features(&self) -> Features {
        Features::standalone_buildkit(self.opts.default_load)
    }

    fn describe(&self) -> String {
        match &self.pod {
            Some(pod) => format!("pod {pod} of deployment {}", self.name),
            None => format!("deployment {}", self.name),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn endpoint_as_buildx_stores_it() {
        let ep = endpoint("kube", "kube0", "/root/.kube/my config");
        assert_eq!(
            ep,
            "kubernetes:///kube?deployment=kube0&kubeconfig=%2Froot%2F.kube%2Fmy+config"
        );
        assert_eq!(
            endpoint_kubeconfig(&ep).unwrap(),
            PathBuf::from("/root/.kube/my config")
        );
        assert_eq!(
            endpoint_kubeconfig("kubernetes:///kube?deployment=kube0&kubeconfig="),
            None
        );
        let id = generate_deployment_id();
        assert!(
            id.starts_with("buildkit-") && id.len() == "buildkit-".len() + 36 + 6,
            "{id}"
        );
    }

    #[test]
    fn names_and_durations() {
        assert_eq!(deployment_name("my_builder0"), "my-builder0");
        assert_eq!(human_duration(Duration::from_secs(120)), "2 minutes");
        assert_eq!(human_duration(Duration::from_secs(60)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 seconds");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
    }
}
