//! What a successful build request gives back.

use std::collections::BTreeMap;

use brix_solver_client::progress::BuildWarning;
use serde_json::value::RawValue;

use crate::CallMethod;

/// The result of one build request that succeeded.
#[derive(Debug)]
pub struct BuildOutcome {
    /// The image ID buildx prints with `--quiet` and writes to `--iidfile`: the config digest
    /// of a single-platform image, the index digest of a multi-platform one; `None` when
    /// the outputs hold no image (and for a `--call`).
    pub image_id: Option<String>,
    /// The metadata buildx reports (its `--metadata-file` without the provenance): the
    /// exporters' response decoded (`containerimage.digest`, `containerimage.descriptor`,
    /// …), `buildx.build.ref`, and, when `BUILDX_METADATA_WARNINGS` asks for them with a
    /// metadata file, `buildx.build.warnings`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The `buildx.build.provenance[/<platform>]` predicates, read back from the build's
    /// records when the request has a metadata file (`BUILDX_METADATA_PROVENANCE`), each kept
    /// as buildx writes it.
    pub provenance: BTreeMap<String, Box<RawValue>>,
    /// The warnings the solves reported, each once (several platforms report the same one),
    /// in the order they came.
    pub warnings: Vec<BuildWarning>,
    /// The frontend's answer, when the request was a `--call` (`check`, `outline`, …).
    pub call: Option<CallAnswer>,
}

impl BuildOutcome {
    /// The metadata file's text as buildx writes it: [`metadata`](Self::metadata) and the
    /// [`provenance`](Self::provenance) in one object, indented as Go's `json.MarshalIndent`.
    /// (A `--call`'s metadata file is [`CallAnswer::metadata_file_text`].)
    pub fn metadata_file_text(&self) -> Result<String, serde_json::Error> {
        crate::metadata_provenance::metadata_file_text(&self.metadata, &self.provenance)
    }
}

/// A frontend method's answer (`--call`, `--check`), for the caller to print as buildx
/// prints it (tables, lint results, the status code as the exit code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAnswer {
    /// The method asked for.
    pub method: CallMethod,
    /// The answer: the result's metadata (`result.json`, `result.txt`, `version`,
    /// `result.statuscode`) over the exporter response, as text.
    pub response: BTreeMap<String, String>,
    /// The Dockerfile's name as buildx shows it in check results: `-f` as given, `stdin` for
    /// `-f -`, else `CONTEXT/Dockerfile`.
    pub dockerfile_name: String,
}

impl CallAnswer {
    /// The call's metadata file as buildx writes it: the answer's keys sorted, JSON values
    /// (`result.json`, base64 JSON objects) as JSON, everything else as strings.
    pub fn metadata_file_text(&self) -> String {
        crate::call::metadata_json(&self.response)
    }
}
