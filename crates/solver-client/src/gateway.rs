//! A frontend called from the client, over BuildKit's gateway API (`LLBBridge`): the
//! build's `Control.Solve` names no frontend, and the client asks the frontend for a result
//! through the gateway, then hands it back with `Return` (what BuildKit's Go client does in
//! `client.Build`, and buildx for every build). Unlike `Control.Solve`, which passes on only a
//! result's `frontend.*` metadata, this gives the client the whole result: a subrequest's
//! `result.json`, `result.txt`, `version` and `result.statuscode` (`build --call outline`,
//! `targets`, `check`).
//!
//! ```no_run
//! # async fn demo(client: brix_solver_client::ControlClient) -> Result<(), Box<dyn std::error::Error>> {
//! use brix_solver_client::gateway::call_frontend;
//! use brix_solver_client::session::{Session, SyncedDir};
//! use brix_solver_client::solve::SolveSpec;
//! let mut session = Session::new("hello");
//! session.add_local("context", SyncedDir::new("."));
//! session.add_local("dockerfile", SyncedDir::new("."));
//! let running = session.run_over_control(&mut client.raw()).await?;
//! let spec = SolveSpec::dockerfile().attr("requestid", "frontend.outline");
//! let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
//! let result = call_frontend(&client, spec, None, running, events).await?;
//! println!("{}", String::from_utf8_lossy(&result.metadata["result.json"]));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;

use crate::control::{ClientError, ControlClient};
use crate::progress::ProgressEvent;
use crate::proto::google::rpc;
use crate::proto::moby::buildkit::v1::frontend as pb_gateway;
use crate::session::RunningSession;
use crate::solve::{
    SolveError, SolveFailure, SolveSpec, decode_failure, drain_status, failure_from_client_error,
    follow_status, new_build_ref,
};

/// The gRPC metadata key that ties a gateway call to its build (`SolveRequest.Ref`).
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// How long the build's `Control.Solve` may take to end by itself after the gateway side
/// failed before it is given up (BuildKit's Go client waits as long).
const SOLVE_GRACE: Duration = Duration::from_secs(5);

/// A second try of the frontend call, made when the first fails in a way `applies` recognises:
/// the same request with `attrs` added (buildx retries a subrequest that an old built-in
/// frontend lacks with a newer Dockerfile frontend image, `build-arg:BUILDKIT_SYNTAX`). When
/// the second try fails too, the first error is the one returned.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// Whether the first try's failure calls for the second.
    pub applies: fn(&SolveFailure) -> bool,
    /// The frontend options the second try adds.
    pub attrs: BTreeMap<String, String>,
}

/// What a frontend called through the gateway returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendResult {
    /// The job ID the build ran under.
    pub build_ref: String,
    /// The result's metadata, e.g. a subrequest's `result.json`, `result.txt`, `version`,
    /// `result.statuscode`.
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// The `Control.Solve` response (exporters, if the spec has any).
    pub exporter_response: BTreeMap<String, String>,
}

/// Runs one build whose frontend (`spec.frontend`, with `spec.frontend_attrs`) is called
/// through the gateway (again with `fallback`'s options if the first call fails as it
/// expects), over `session` (already connected), streaming its progress to `progress`, and
/// returns the frontend's result. The build is internal (kept out of the
/// daemon's build history), as buildx's `--call` builds are. Dropping the future cancels it.
pub async fn call_frontend(
    client: &ControlClient,
    spec: SolveSpec,
    fallback: Option<Fallback>,
    session: RunningSession,
    progress: mpsc::UnboundedSender<Vec<ProgressEvent>>,
) -> Result<FrontendResult, SolveError> {
    let build_ref = if spec.build_ref.is_empty() {
        new_build_ref()
    } else {
        spec.build_ref.clone()
    };
    let (control_request, frontend_request) = requests(&spec, &build_ref, session.id());
    let status_task = follow_status(client, &build_ref, progress);

    let (control_outcome, gateway_outcome) = {
        let mut control = std::pin::pin!(client.solve(control_request));
        let mut gateway = std::pin::pin!(drive_frontend(
            client,
            &build_ref,
            frontend_request,
            fallback
        ));
        tokio::select! {
            // The build ended first. After a success the answer to `Return` is only just
            // behind the build's own; after a failure the gateway calls fail with it.
            outcome = &mut control => {
                let result = if outcome.is_ok() {
                    tokio::time::timeout(SOLVE_GRACE, &mut gateway).await.ok()
                } else {
                    None
                };
                (outcome, result)
            }
            result = &mut gateway => {
                let control_outcome = if result.is_ok() {
                    control.await
                } else {
                    // Nothing was returned: the build normally fails by itself right away.
                    match tokio::time::timeout(SOLVE_GRACE, &mut control).await {
                        Ok(outcome) => outcome,
                        Err(_) => Ok(Default::default()),
                    }
                };
                (control_outcome, Some(result))
            }
        }
    };
    drop(session);
    drain_status(status_task).await;

    let response = control_outcome.map_err(failure_from_client_error)?;
    let result = match gateway_outcome {
        Some(Ok(result)) => result,
        Some(Err(GatewayError::Frontend(status))) => {
            return Err(failure_from_client_error(ClientError::from_status(
                client.endpoint(),
                "LLBBridge.Solve",
                status,
            )));
        }
        Some(Err(GatewayError::Call(err))) => return Err(SolveError::Client(err)),
        None => pb_gateway::Result::default(),
    };
    Ok(FrontendResult {
        build_ref,
        metadata: result.metadata,
        exporter_response: response.exporter_response,
    })
}

/// The build's `Control.Solve` (no frontend: the client is the frontend) and the gateway
/// request that calls the real frontend, both from `spec` as BuildKit's Go client makes them.
fn requests(
    spec: &SolveSpec,
    build_ref: &str,
    session_id: &str,
) -> (
    crate::proto::moby::buildkit::v1::SolveRequest,
    pb_gateway::SolveRequest,
) {
    let mut control = spec.to_request(build_ref, session_id);
    let frontend = std::mem::take(&mut control.frontend);
    control.internal = true;
    let frontend_request = pb_gateway::SolveRequest {
        frontend,
        frontend_opt: control.frontend_attrs.clone(),
        allow_result_return: true,
        allow_result_array_ref: true,
        ..Default::default()
    };
    (control, frontend_request)
}

/// Why the gateway side failed.
enum GatewayError {
    /// The frontend failed; the error was handed back to the build with `Return`.
    Frontend(tonic::Status),
    /// A gateway call itself failed (nothing was returned).
    Call(ClientError),
}

/// The gateway side of the build: `Ping` (which also waits for the build to register), the
/// frontend's `Solve` (twice, with a fallback that applies), then `Return` with its result or
/// its error.
async fn drive_frontend(
    client: &ControlClient,
    build_ref: &str,
    request: pb_gateway::SolveRequest,
    fallback: Option<Fallback>,
) -> Result<pb_gateway::Result, GatewayError> {
    let mut bridge = client.gateway();
    let endpoint = client.endpoint();
    let call_error =
        |call| move |status| GatewayError::Call(ClientError::from_status(endpoint, call, status));
    bridge
        .ping(for_build(build_ref, pb_gateway::PingRequest {}))
        .await
        .map_err(call_error("LLBBridge.Ping"))?;
    let mut solved = bridge.solve(for_build(build_ref, request.clone())).await;
    if let (Err(status), Some(fallback)) = (&solved, &fallback)
        && (fallback.applies)(&decode_failure(status))
    {
        let mut retry = request;
        retry.frontend_opt.extend(fallback.attrs.clone());
        if let Ok(response) = bridge.solve(for_build(build_ref, retry)).await {
            solved = Ok(response);
        }
    }
    let (ret, outcome) = match solved {
        Ok(response) => {
            let result = response.into_inner().result.unwrap_or_default();
            (
                pb_gateway::ReturnRequest {
                    result: Some(result.clone()),
                    error: None,
                },
                Ok(result),
            )
        }
        Err(status) => (
            pb_gateway::ReturnRequest {
                result: None,
                error: Some(status_to_rpc(&status)),
            },
            Err(GatewayError::Frontend(status)),
        ),
    };
    bridge
        .r#return(for_build(build_ref, ret))
        .await
        .map_err(call_error("LLBBridge.Return"))?;
    outcome
}

/// A gateway request for the build `build_ref`.
fn for_build<T>(build_ref: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = build_ref.parse() {
        request.metadata_mut().insert(BUILD_ID_KEY, value);
    }
    request
}

/// A gRPC error as `google.rpc.Status`, keeping its typed details (the failing vertex, the
/// Dockerfile lines) for the build's own error.
fn status_to_rpc(status: &tonic::Status) -> rpc::Status {
    let details = rpc::Status::decode(status.details())
        .map(|s| s.details)
        .unwrap_or_default();
    rpc::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_solve_names_no_frontend_and_the_gateway_request_does() {
        let spec = SolveSpec::dockerfile()
            .attr("requestid", "frontend.outline")
            .attr("filename", "Dockerfile");
        let (control, frontend) = requests(&spec, "ref1", "sess1");
        assert_eq!(control.frontend, "");
        assert_eq!(control.r#ref, "ref1");
        assert_eq!(control.session, "sess1");
        assert!(control.internal);
        assert_eq!(control.frontend_attrs["requestid"], "frontend.outline");
        assert_eq!(frontend.frontend, "dockerfile.v0");
        assert_eq!(frontend.frontend_opt, control.frontend_attrs);
        assert!(frontend.allow_result_return && frontend.allow_result_array_ref);
    }

    #[test]
    fn gateway_calls_carry_the_build_id() {
        let request = for_build("abc123", pb_gateway::PingRequest {});
        assert_eq!(
            request
                .metadata()
                .get(BUILD_ID_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("abc123")
        );
    }

    #[test]
    fn a_returned_error_keeps_the_typed_details() {
        let details = rpc::Status {
            code: 2,
            message: "boom".into(),
            details: vec![prost_types::Any {
                type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                value: vec![1, 2, 3],
            }],
        };
        let status = tonic::Status::with_details(
            tonic::Code::Unknown,
            "boom",
            details.encode_to_vec().into(),
        );
        let rpc = status_to_rpc(&status);
        assert_eq!(rpc.code, tonic::Code::Unknown as i32);
        assert_eq!(rpc.message, "boom");
        assert_eq!(rpc.details.len(), 1);
    }
}
