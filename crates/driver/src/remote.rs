//! The remote driver: a BuildKit daemon someone else runs, at `unix:///path` or
//! `tcp://host:port` (optionally TLS with client certificates).

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::path::PathBuf;

use brix_solver_client::{ControlClient, TlsConfig};

use crate::DriverError;
use crate::driver::{
    BootstrapEvent, BootstrapSink, BoxedDaemonIo, Driver, Features, RmOptions, Status,
};

/// Every driver option the remote driver accepts.
pub const VALID_OPTIONS: &[&str] = &["cacert", "cert", "key", "servername", "default-load"];

/// TLS settings of a `tcp://` remote builder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteOptions {
    /// CA certificate that signed the daemon's certificate; turns TLS on.
    pub cacert: Option<PathBuf>,
    /// Client certificate (with `key`).
    pub cert: Option<PathBuf>,
    /// Client key (with `cert`).
    pub key: Option<PathBuf>,
    /// Name to verify the daemon's certificate against; the endpoint's host by default.
    pub servername: Option<String>,
    /// Load build results into Docker by default.
    pub default_load: bool,
}

impl RemoteOptions {
    /// Parses `--driver-opt` pairs; an unknown key is an error listing the valid ones.
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Self, DriverError> {
        let mut o = Self::default();
        for (k, v) in opts {
            match k.as_str() {
                "cacert" => o.cacert = Some(PathBuf::from(v)),
                "cert" => o.cert = Some(PathBuf::from(v)),
                "key" => o.key = Some(PathBuf::from(v)),
                "servername" => o.servername = Some(v.clone()),
                "default-load" => {
                    o.default_load = matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true");
                }
                _ => {
                    return Err(DriverError::UnknownOption {
                        driver: "remote",
                        key: k.clone(),
                        valid: VALID_OPTIONS.to_vec(),
                    });
                }
            }
        }
        if o.cert.is_some() != o.key.is_some() {
            return Err(DriverError::Invalid(
                "remote driver: cert and key must be given together".into(),
            ));
        }
        if (o.cert.is_some() || o.servername.is_some()) && o.cacert.is_none() {
            return Err(DriverError::Invalid("remote driver: TLS needs cacert=<file> (with cert= and key= for client certificates)".into()));
        }
        Ok(o)
    }

    /// Whether TLS is on.
    pub fn tls(&self) -> bool {
        self.cacert.is_some()
    }
}

/// Checks a remote endpoint: `unix:///path` or `tcp://host:port`.
pub fn validate_endpoint(ep: &str) -> Result<(), DriverError> {
    let ok = match ep.split_once("://") {
        Some(("unix", path)) => path.starts_with('/'),
        Some(("tcp", hostport)) => hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "invalid remote endpoint {ep:?}: use unix:///path/to/buildkitd.sock or tcp://host:port"
        )))
    }
}

/// A BuildKit daemon brix does not manage.
pub struct RemoteDriver {
    endpoint: String,
    opts: RemoteOptions,
}

impl RemoteDriver {
    /// A driver for the daemon at `endpoint` with TLS options from `driver_opts`.
    pub fn new(
        endpoint: &str,
        driver_opts: &BTreeMap<String, String>,
    ) -> Result<Self, DriverError> {
        validate_endpoint(endpoint)?;
        Ok(Self {
            endpoint: endpoint.to_string(),
            opts: RemoteOptions::parse(driver_opts)?,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The TLS options.
    pub fn options(&self) -> &RemoteOptions {
        &self.opts
    }

    fn connect_err(&self, reason: impl std::fmt::Display) -> DriverError {
        DriverError::Connect {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        }
    }

    async fn dial_plain(&self) -> Result<BoxedDaemonIo, DriverError> {
        match self.endpoint.split_once("://") {
            Some(("unix", path)) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| self.connect_err(e))?;
                Ok(Box::pin(s))
            }
            Some(("tcp", hostport)) => {
                if self.opts.tls() {
                    return Err(self.connect_err(
                        "TLS connections go through brix_driver::connect, not a raw dial",
                    ));
                }
                let s = tokio::net::TcpStream::connect(hostport)
                    .await
                    .map_err(|e| self.connect_err(e))?;
                let _ = s.set_nodelay(true);
                Ok(Box::pin(s))
            }
            _ => Err(self.connect_err("unsupported scheme")),
        }
    }
}

impl Driver for RemoteDriver {
    fn name(&self) -> &'static str {
        "remote"
    }

    fn status(&self) -> BoxFuture<'_, Result<Status, DriverError>> {
        Box::pin(async move {
            // Reachability is all a remote driver can know without a gRPC call; over TLS the
            // handshake is part of reaching it. Unreachable is "inactive", as buildx says, so a
            // builder can be created before its daemon runs; `inspect --bootstrap` says why.
            let reachable = if self.opts.tls() {
                self.connect().await.is_ok()
            } else {
                self.dial_plain().await.is_ok()
            };
            Ok(if reachable {
                Status::Running
            } else {
                Status::Inactive
            })
        })
    }

    fn bootstrap<'a>(
        &'a self,
        sink: &'a dyn BootstrapSink,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let step = format!("connecting to {}", self.endpoint);
            sink.event(BootstrapEvent::StepStarted { step: step.clone() });
            let r = if self.opts.tls() {
                Ok(())
            } else {
                self.dial_plain().await.map(|_| ())
            };
            sink.event(BootstrapEvent::StepFinished {
                step,
                error: r.as_ref().err().map(|e| e.to_string()),
            });
            r
        })
    }

    fn stop(&self, _force: bool) -> BoxFuture<'_, Result<(), DriverError>> {
        // brix does not own a remote daemon: nothing to stop.
        Box::pin(async { Ok(()) })
    }

    fn rm(&self, _opts: RmOptions) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(async { Ok(()) })
    }

    fn dial(&self) -> BoxFuture<'_, Result<BoxedDaemonIo, DriverError>> {
        Box::pin(self.dial_plain())
    }

    fn connect(&self) -> BoxFuture<'_, Result<ControlClient, DriverError>> {
        Box::pin(async move {
            let tls = match &self.opts.cacert {
                Some(ca) => {
                    let mut t = TlsConfig::from_files(
                        ca,
                        self.opts.cert.as_deref(),
                        self.opts.key.as_deref(),
                    )?;
                    if let Some(name) = &self.opts.servername {
                        t.server_name = Some(name.clone());
                    }
                    Some(t)
                }
                None => None,
            };
            Ok(ControlClient::connect(&self.endpoint, tls).await?)
        })
    }

    fn features(&self) -> Features {
        Features::standalone_buildkit(self.opts.default_load)
    }

    fn describe(&self) -> String {
        self.endpoint.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_options() {
        assert!(validate_endpoint("unix:///run/buildkit/buildkitd.sock").is_ok());
        assert!(validate_endpoint("tcp://10.0.0.1:1234").is_ok());
        assert!(validate_endpoint("tcp://host").is_err());
        assert!(validate_endpoint("http://x:1").is_err());
        let m = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(
            RemoteOptions::parse(&m(&[("cacert", "/ca"), ("cert", "/c"), ("key", "/k")]))
                .unwrap()
                .tls()
        );
        assert!(RemoteOptions::parse(&m(&[("cert", "/c")])).is_err());
        let e = RemoteOptions::parse(&m(&[("image", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("servername"), "{e}");
    }
}
