//! Two images built together on one builder with brix-build's API, the way `brix bake`
//! builds two targets: one `build` call, the builder's nodes connected once, the two solves
//! run concurrently, one result each.
//!
//! ```text
//! cargo run -p brix-build --example two_images -- BUILDER CONTEXT_A CONTEXT_B
//! ```
//!
//! `BUILDER` is a builder's name in the builder store (`brix ls`); each context is a folder
//! with a Dockerfile. Each image is written as an OCI layout tarball (`a.oci.tar`,
//! `b.oci.tar`) in the current folder, so no registry is needed.

use std::process::ExitCode;
use std::sync::Arc;

use brix_build::{BuildRequest, PlannedBuild, ProgressSink, StepProgress};
use brix_driver::{BootstrapEvent, BootstrapSink, Store};
use brix_solver_client::progress::ProgressEvent;

/// A progress display of one line per finished step.
struct Lines;

impl ProgressSink for Lines {
    fn solve_events(&self, solve: usize, prefix: Option<&str>, events: Vec<ProgressEvent>) {
        for event in events {
            if let ProgressEvent::Vertex(v) = event
                && v.completed.is_some()
            {
                let how = match (&v.error, v.cached) {
                    (Some(e), _) => format!("ERROR: {e}"),
                    (None, true) => "CACHED".to_owned(),
                    (None, false) => "DONE".to_owned(),
                };
                // The engine names the request in `prefix` when it builds several.
                eprintln!("#{solve} [{}] {} {how}", prefix.unwrap_or(""), v.name);
            }
        }
    }

    fn client_step(&self, name: &str) -> Box<dyn StepProgress> {
        eprintln!("=> {name}");
        Box::new(Step(name.to_owned()))
    }

    fn warning(&self, message: &str) {
        eprintln!("WARNING: {message}");
    }
}

/// A client-side step (booting a node, pushing an index): its lines as they come.
struct Step(String);

impl StepProgress for Step {
    fn status(&self, id: &str, done: bool) {
        if done {
            eprintln!("   {}: {id} done", self.0);
        }
    }

    fn log(&self, line: &str) {
        eprintln!("   {}: {line}", self.0);
    }

    fn done(&self, error: Option<String>) {
        match error {
            Some(e) => eprintln!("   {}: ERROR: {e}", self.0),
            None => eprintln!("   {}: done", self.0),
        }
    }
}

impl BootstrapSink for Step {
    fn event(&self, ev: BootstrapEvent) {
        if let BootstrapEvent::StepFinished { step, .. } = ev {
            self.status(&step, true);
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [builder, context_a, context_b] = args.as_slice() else {
        eprintln!("usage: two_images BUILDER CONTEXT_A CONTEXT_B");
        return ExitCode::from(2);
    };
    match run(builder, [("a", context_a), ("b", context_b)]) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: {}", brix_build::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(
    builder: &str,
    contexts: [(&str, &String); 2],
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Every request is checked before a daemon is contacted.
    let mut requests = Vec::new();
    for (name, context) in contexts {
        let mut request = BuildRequest::new(context.as_str());
        request.tags = vec![format!("two-images-{name}:latest")];
        request.outputs = vec![format!("type=oci,dest={name}.oci.tar")];
        let planned = PlannedBuild::new(request, &|w| eprintln!("WARNING: {w}"))?;
        requests.push((name.to_owned(), planned));
    }
    let store = Store::open_default()?;
    let node_group = brix_driver::builder::resolve(&store.txn()?, Some(builder))?;

    let runtime = tokio::runtime::Runtime::new()?;
    let results = runtime.block_on(brix_build::build(&node_group, requests, Arc::new(Lines)));
    let mut code = ExitCode::SUCCESS;
    for (name, result) in results {
        match result {
            Ok(outcome) => println!(
                "{name}: {}",
                outcome.image_id.as_deref().unwrap_or("(no image)")
            ),
            Err(e) => {
                println!("{name}: failed: {}", brix_build::one_line(&e));
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
